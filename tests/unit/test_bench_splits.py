"""The fixed splits as every benchmark reads them (scripts/splits.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from splits import part_ids  # noqa: E402


@pytest.mark.parametrize("split_file", ["negex-reports.json", "deid-patients.json"])
def test_the_two_parts_are_disjoint_and_non_empty(split_file):
    dev, locked = part_ids(split_file, "dev"), part_ids(split_file, "locked")
    assert dev and locked and not dev & locked


@pytest.mark.parametrize("part", ["development", "test", "Locked", ""])
def test_an_unknown_part_name_is_refused_rather_than_read_as_locked(part):
    with pytest.raises(ValueError, match="unknown split part"):
        part_ids("negex-reports.json", part)
