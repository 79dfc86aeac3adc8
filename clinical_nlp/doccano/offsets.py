"""Doccano's web UI counts offsets in UTF-16 code units (JavaScript strings); we count code points.

They differ after any character outside the Basic Multilingual Plane (emoji, some CJK and math
symbols), which is two UTF-16 units and one Python character: a suggestion imported at our offsets
was drawn shifted, and a span the annotator drew came back shifted. Every offset sent to Doccano
goes through :func:`to_doccano`, every offset read from it through :func:`from_doccano`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _units(text: str) -> list[int] | None:
    """UTF-16 offset of each code-point offset 0..len(text), or None where they are equal."""
    if not _ASTRAL.search(text):
        return None
    out, u = [0], 0
    for ch in text:
        u += 2 if ord(ch) > 0xFFFF else 1
        out.append(u)
    return out


def to_doccano(text: str, triples: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """(start, end, label) in code points → in UTF-16 units of ``text``."""
    units = _units(text)
    if units is None:
        return list(triples)
    return [(units[a], units[b], lab) for a, b, lab in triples]


def from_doccano(text: str, triples: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """(start, end, label) in UTF-16 units of ``text`` → in code points; an offset inside a surrogate
    pair (half an emoji selected) widens the span to the whole character."""
    units = _units(text)
    if units is None:
        return list(triples)
    out = []
    for a, b, lab in triples:
        start = bisect.bisect_right(units, a) - 1
        end = bisect.bisect_left(units, b)
        out.append((max(start, 0), min(end, len(text)), lab))
    return out
