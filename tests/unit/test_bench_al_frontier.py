"""The per-edit frontier summary of scripts/bench_al_frontier.py (pure functions)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from bench_al_frontier import random_curve, summarise  # noqa: E402


def _points():
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for size, edits, f1 in ((0, 0, 0.30), (30, 500, 0.36), (60, 1000, 0.40)):
            rows.append({"seed": seed, "rule": f"random@{size}", "edits": edits, "f1": f1 + shift, "gold_spans": edits})
        rows.append({"seed": seed, "rule": "cheap", "edits": 250, "f1": 0.35 + shift, "gold_spans": 200})
        rows.append({"seed": seed, "rule": "dear", "edits": 3000, "f1": 0.45 + shift, "gold_spans": 2500})
    return rows


def test_random_curve_is_sorted_by_edits_per_seed():
    edits, f1 = random_curve(list(reversed(_points())), 1)
    assert edits.tolist() == [0, 500, 1000]
    assert f1 == pytest.approx([0.32, 0.38, 0.42])


def test_gap_is_f1_minus_random_interpolated_at_equal_edits():
    s = summarise(_points())
    # random at 250 edits: halfway between 0.30 and 0.36 -> 0.33; "cheap" scores 0.35 -> +0.02 in both seeds
    assert s["cheap"]["gap_to_random_at_equal_edits"] == pytest.approx(0.02)
    assert s["cheap"]["gap_per_seed"] == pytest.approx([0.02, 0.02])
    assert s["cheap"]["edits"] == 250 and s["cheap"]["seeds"] == 2
    # beyond random's largest subset the curve is not extrapolated
    assert s["dear"]["gap_to_random_at_equal_edits"] is None
    assert s["dear"]["gap_per_seed"] == [None, None]
    assert s["random@30"]["gap_to_random_at_equal_edits"] == pytest.approx(0.0)
