"""The note as the pipeline reads it: unusual spaces and hyphens as plain ones (``textnorm``), offsets unchanged.

Every span keeps the offsets and the text of the original note.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from clinical_nlp.textnorm import plain_text
from clinical_nlp.types import Note, Span


def working_note(note: Note) -> Note:
    """The note as the pipeline reads it (see :func:`clinical_nlp.textnorm.plain_text`)."""
    text = plain_text(note.text)
    return note if text == note.text else dataclasses.replace(note, text=text)


def original_text(spans: Iterable[Span], text: str) -> list[Span]:
    """Spans whose ``text`` is the original note's characters at their offsets."""
    return [s if s.text == text[s.start : s.end] else dataclasses.replace(s, text=text[s.start : s.end]) for s in spans]
