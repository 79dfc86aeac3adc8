"""Benchmark targets: print each against its measured value; the script exits 1 when any is missed."""

from __future__ import annotations

import operator
import sys
from collections.abc import Sequence
from dataclasses import dataclass

_OPS = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Target:
    """``value op bar`` (``op`` is ``>=`` or ``<=``), named for the printout."""

    name: str
    value: float | None
    op: str
    bar: float

    @property
    def met(self) -> bool:
        return self.value is not None and _OPS[self.op](self.value, self.bar)


def check_targets(targets: Sequence[Target]) -> int:
    """Print every target with MET/MISSED; return the exit code (0: all met, 1: any missed)."""
    for t in targets:
        shown = "n/a" if t.value is None else f"{t.value:.4g}"
        print(f"target {t.name}: {shown} {t.op} {t.bar:g}: {'met' if t.met else 'MISSED'}", file=sys.stderr)
    missed = [t.name for t in targets if not t.met]
    if missed:
        print(f"TARGETS MISSED: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0
