"""The fixed development / locked splits under ``splits/``, read one way by every script.

A part name other than ``"dev"`` or ``"locked"`` is refused: an unknown name must never fall through
to the locked part, whose individual rows no script may print.
"""

from __future__ import annotations

import json
from pathlib import Path

SPLITS_DIR = Path(__file__).resolve().parent.parent / "splits"
PART_KEYS = {"dev": "development", "locked": "locked"}


def part_ids(split_file: str, part: str) -> set[str]:
    """The group ids (reports, patients) of ``part`` in ``splits/<split_file>``, as strings."""
    if part not in PART_KEYS:
        raise ValueError(f"unknown split part {part!r}: expected one of {sorted(PART_KEYS)}")
    table = json.loads((SPLITS_DIR / split_file).read_text(encoding="utf-8"))
    return {str(g) for g in table[PART_KEYS[part]]}
