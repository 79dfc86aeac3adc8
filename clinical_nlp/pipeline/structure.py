"""Document structure that is never an entity: section headers and list markers.

A header is a line's leading title followed by a colon, in capitals (``MEDICATIONS:``) or made of
clinical section words (``History of Present Illness:``; the vocabulary of
:mod:`clinical_nlp.deid.shield`), a markdown header line (``# Allergies``) or a whole line in
capitals (``FAMILY HISTORY``). A title such as ``Headache:`` is not a header: a finding may lead a
line. A span that lies inside a header is dropped from the pre-annotation: a suggestion there costs
the expert a deletion and, for a safety-critical label (``Medications`` tagged Drug), sends the note
to adjudication and QA review for nothing.

Example:
    >>> text = "MEDICATIONS: Tylenol 500 mg.\\n# Allergies\\nNone."
    >>> [text[a:b] for a, b in header_ranges(text)]
    ['MEDICATIONS:', '# Allergies']
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from itertools import accumulate

# a title at the start of a line: words (letters, /, &, -, ') then a colon; or a markdown header line;
# or a whole line in capitals of at most six words
_TITLED = re.compile(r"(?m)^[ \t]*([A-Za-z][A-Za-z /&'()-]{1,60}?):")
_MARKDOWN = re.compile(r"(?m)^[ \t]*#{1,6}[ \t]+[^\n]{1,80}$")
_CAPS_LINE = re.compile(r"(?m)^[ \t]*([A-Z][A-Z /&'-]{2,60})[ \t]*:?[ \t]*$")
_MAX_TITLE_WORDS = 6


_CONNECTORS = frozenset("of and the for to on in with".split())


def _section_title(title: str) -> bool:
    from clinical_nlp.deid.shield import SHIELD

    words = re.findall(r"[A-Za-z]+", title)
    if not words or len(words) > _MAX_TITLE_WORDS:
        return False
    return title.isupper() or all(w.lower() in SHIELD or w.lower() in _CONNECTORS for w in words)


def header_ranges(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of every section header in ``text``."""
    for m in _TITLED.finditer(text):
        if _section_title(m.group(1)):
            yield m.start(1), m.end()
    for m in _MARKDOWN.finditer(text):
        yield m.start(), m.end()
    for m in _CAPS_LINE.finditer(text):
        if len(m.group(1).split()) <= _MAX_TITLE_WORDS:
            yield m.start(1), m.end()


class IntervalIndex:
    """Ranges ``[a, b)`` asked in O(log n) whether any overlaps, or contains, a given range (the pipeline
    asked every span against every model span and header: quadratic on a long note).

    >>> idx = IntervalIndex([(0, 10), (20, 25)])
    >>> idx.overlaps(9, 12), idx.overlaps(10, 20), idx.contains(21, 25), idx.contains(5, 12)
    (True, False, True, False)
    """

    def __init__(self, ranges: Iterable[tuple[int, int]]):
        pairs = sorted(ranges)
        self._starts = [a for a, _ in pairs]
        self._max_end = list(accumulate((b for _, b in pairs), max))

    def overlaps(self, start: int, end: int) -> bool:
        """Whether some ``[a, b)`` has ``a < end`` and ``start < b``."""
        k = bisect_left(self._starts, end)
        return k > 0 and self._max_end[k - 1] > start

    def contains(self, start: int, end: int) -> bool:
        """Whether some ``[a, b)`` has ``a <= start`` and ``end <= b``."""
        k = bisect_right(self._starts, start)
        return k > 0 and self._max_end[k - 1] >= end
