"""The benchmarks' whole-process timer (scripts/timing.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from timing import whole_process_seconds  # noqa: E402


def test_each_peer_gets_its_best_wall_time_over_the_rounds():
    fast = [sys.executable, "-c", "pass"]
    slow = [sys.executable, "-c", "import time; time.sleep(0.3)"]
    got = whole_process_seconds({"fast": fast, "slow": slow}, repeat=2)
    assert set(got) == {"fast", "slow"}
    assert 0 < got["fast"] < got["slow"] and got["slow"] >= 0.3


def test_a_failing_command_stops_the_benchmark_naming_it_and_its_stderr():
    bad = [sys.executable, "-c", "import sys; sys.exit('no such model')"]
    with pytest.raises(SystemExit, match=r"(?s)peer run failed \(exit 1\).*no such model"):
        whole_process_seconds({"peer": bad})
