"""Whole-process timings for the benchmarks: each command run start to exit, peers in the same run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence


def whole_process_seconds(commands: Mapping[str, Sequence[str]], repeat: int = 1) -> dict[str, float]:
    """Wall seconds of each command, best of ``repeat`` rounds; each round runs every command once, in
    turn, so peers see the same machine load. A command that fails stops the benchmark with its stderr."""
    best = {name: float("inf") for name in commands}
    for _ in range(max(1, repeat)):
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=3600)
            if proc.returncode:
                sys.exit(f"{name} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            best[name] = min(best[name], time.perf_counter() - t0)
    return best
