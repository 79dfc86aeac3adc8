"""Distance ranks between the spans of one row, computed once per span and reused for every pair.

The relation features ask, for each candidate pair (a, b), where a stands among b's possible heads
(nearest first), on its own side of b, and where b stands among a's nearest spans of b's label. A
row with n spans has O(n²) candidate pairs; sorting the spans again for each pair made these
features the linear model's largest cost. :class:`SpanRanks` sorts once per (span, label) and
answers each pair by a dictionary lookup (the same orders: Python's sort is stable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


def _first_ranks(ordered: Sequence[dict]) -> dict[str, int]:
    """Span id → its position in ``ordered`` (the first one where an id repeats)."""
    out: dict[str, int] = {}
    for i, s in enumerate(ordered):
        out.setdefault(s["id"], i)
    return out


def gap(x: dict, y: dict) -> int:
    """Characters between two spans (0 when they touch or overlap)."""
    return max(y["start"] - x["end"], x["start"] - y["end"], 0)


@dataclass
class SpanRanks:
    """Rank tables of one row's ``spans`` (``allowed``: the label pairs a link may join)."""

    spans: Sequence[dict]
    allowed: set[tuple[str, str]] | None = None
    _heads: dict[str, tuple[dict[str, int], dict[bool, dict[str, int]], int]] = field(default_factory=dict)
    _near: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def heads_of(self, b: dict) -> tuple[dict[str, int], dict[bool, dict[str, int]], int]:
        """b's possible heads: ``(rank by distance, {left of b?: rank on that side}, how many)`` by span id."""
        got = self._heads.get(b["id"])
        if got is None:
            allowed = self.allowed or set()
            heads = [s for s in self.spans if s["id"] != b["id"] and (s["label"], b["label"]) in allowed]
            overall = sorted(heads, key=lambda s: (gap(s, b), s["start"] > b["start"]))
            rank = _first_ranks(overall)
            side: dict[bool, dict[str, int]] = {}
            for left in (True, False):
                on_side = sorted((s for s in heads if (s["start"] < b["start"]) == left), key=lambda s: gap(s, b))
                side[left] = _first_ranks(on_side)
            got = (rank, side, len(heads))
            self._heads[b["id"]] = got
        return got

    def nearest_of_label(self, a: dict, label: str) -> dict[str, int]:
        """The other spans of ``label`` by distance to a: rank by span id (0: the nearest)."""
        key = (a["id"], label)
        got = self._near.get(key)
        if got is None:
            same = sorted(
                (s for s in self.spans if s["label"] == label and s["id"] != a["id"]), key=lambda s: gap(a, s)
            )
            got = _first_ranks(same)
            self._near[key] = got
        return got

    def is_nearest(self, a: dict, b: dict) -> bool:
        """Whether b is the span of b's label closest to a (the first such span on a tie)."""
        return b["id"] != a["id"] and self.nearest_of_label(a, b["label"]).get(b["id"]) == 0

    def rank_features(self, a: dict, b: dict, pair: str) -> list[str]:
        """Where a stands among b's possible heads (nearest first, then on its own side) and b among a's
        spans of its label."""
        out = []
        rank, side, n_heads = self.heads_of(b)
        if n_heads > 1 and a["id"] in rank:
            left = a["start"] < b["start"]
            out.append(f"head_rank={min(rank[a['id']], 3)}|{b['label']}")
            out.append(f"side_rank={'L' if left else 'R'}{min(side[left][a['id']], 2)}|{b['label']}")
        same = self.nearest_of_label(a, b["label"])
        if len(same) > 1:
            out.append(f"mod_rank={min(same[b['id']], 2)}|{pair}")
        return out
