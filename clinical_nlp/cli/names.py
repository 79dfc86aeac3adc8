"""Comma-separated name lists of the command line (``--annotators alice,bob``)."""

from __future__ import annotations

from clinical_nlp.errors import InputFormatError


def name_list(value: str | None, option: str) -> list[str]:
    """The names of ``value`` in order; a name given twice is refused (it would be one annotator counted twice)."""
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise InputFormatError(f"{option}: {n!r} is named twice")
        seen.add(n)
    return names
