"""spaCy DocBin (``.spacy``): lossless for our model.

Each note becomes a ``Doc`` whose tokens are the :func:`clinical_nlp.io.conll.tokenize`
tokens further split at every span boundary, so every span is token-aligned:

* ``doc.spans["clinical_nlp"]``: all spans (overlapping allowed; a discontinuous
  span as its outer range), with the span id as ``kb_id``;
* ``doc.ents``: a non-overlapping subset (longest first) for NER training;
* ``doc.user_data["clinical_nlp_relations"]``: the relations as a JSON list of ``{type, arg1, arg2,
  head, tail}``, ``head``/``tail`` being positions in ``doc.spans["clinical_nlp"]`` (for spaCy users:
  ``group[rel["head"]]``);
* ``doc.user_data["clinical_nlp"]``: a JSON string with the note id, metadata and the full span
  records (fragments, attributes, ids, scores) and relations. The reader
  prefers it, so JSONL → DocBin → JSONL is lossless. DocBins made by other
  tools (no user_data) are read from ``doc.spans`` / ``doc.ents``.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clinical_nlp.errors import InputFormatError, OffsetMismatchError
from clinical_nlp.io._common import check_text
from clinical_nlp.io.conll import tokenize
from clinical_nlp.io.jsonl import atomic_writer, row_to_annotated
from clinical_nlp.types import AnnotatedNote, Note, Span

SPAN_KEY = "clinical_nlp"
USER_KEY = "clinical_nlp"
RELATIONS_KEY = "clinical_nlp_relations"


def _words(text: str, starts: set[int], ends: set[int]) -> tuple[list[str], list[bool]]:
    """Words and trailing-space flags whose concatenation is exactly ``text``.

    Every span start/end falls on a token boundary: tokens are split there, and
    a single space after a word only becomes spaCy's trailing-space flag when
    no span starts at it or ends right after it (else it is a token of its own).
    """
    cuts = sorted(starts | ends)
    segments: list[tuple[int, int]] = []
    pos = 0
    for a, b, _ in [*tokenize(text), (len(text), len(text), "")]:
        for lo, hi in ((pos, a), (a, b)):  # the whitespace gap, then the token
            if hi > lo:
                edges = [lo, *cuts[bisect_right(cuts, lo) : bisect_left(cuts, hi)], hi]
                segments.extend(zip(edges, edges[1:], strict=False))
        pos = b
    words: list[str] = []
    spaces: list[bool] = []
    for a, b in segments:
        piece = text[a:b]
        if piece == " " and words and not spaces[-1] and not words[-1].isspace() and a not in starts and b not in ends:
            spaces[-1] = True
            continue
        words.append(piece)
        spaces.append(False)
    return words, spaces


def _vocab():
    import spacy

    return spacy.blank("en").vocab


def note_to_doc(doc: AnnotatedNote, vocab: Any = None):
    """The spaCy ``Doc`` of one annotated note (see module doc)."""
    from spacy.tokens import Doc
    from spacy.util import filter_spans

    vocab = vocab or _vocab()
    words, spaces = _words(doc.text, {s.start for s in doc.spans}, {s.end for s in doc.spans})
    sdoc = Doc(vocab, words=words, spaces=spaces)
    if sdoc.text != doc.text:  # pragma: no cover - guarded by tests
        raise OffsetMismatchError(f"document {doc.id!r}: spaCy tokens do not rebuild the text")
    group = []
    for s in doc.spans:
        cs = sdoc.char_span(s.start, s.end, label=s.label, kb_id=s.id or "", alignment_mode="strict")
        if cs is None:
            raise OffsetMismatchError(
                f"document {doc.id!r}: span {s.label!r} [{s.start}, {s.end}) is not token-aligned"
            )
        group.append(cs)
    sdoc.spans[SPAN_KEY] = group
    sdoc.ents = filter_spans(group)
    if doc.relations:
        from clinical_nlp.consensus.relations import binary_relations

        position = {s.id: k for k, s in enumerate(doc.spans) if s.id}
        sdoc.user_data[RELATIONS_KEY] = json.dumps(
            [
                {"type": t, "arg1": a, "arg2": b, "head": position.get(a), "tail": position.get(b)}
                for t, a, b in binary_relations(doc.relations)
            ]
        )
    from clinical_nlp.io.jsonl import annotated_to_row

    row = annotated_to_row(doc)
    row.pop("text")
    # stored as a JSON string: msgpack would turn lists into tuples
    sdoc.user_data[USER_KEY] = json.dumps(row, default=str, ensure_ascii=False)
    return sdoc


def doc_to_note(sdoc: Any, *, index: int, source: str = "<docbin>", allow_empty: bool = False) -> AnnotatedNote:
    """Rebuild an :class:`AnnotatedNote` from a spaCy ``Doc``."""
    data = sdoc.user_data.get(USER_KEY) if sdoc.user_data else None
    if data:
        try:
            row = json.loads(data) if isinstance(data, str) else dict(data)
        except json.JSONDecodeError as exc:
            raise InputFormatError(
                f"document #{index}: user_data[{USER_KEY!r}] is not JSON: {exc.msg}", source=source
            ) from None
        row["text"] = sdoc.text
        return row_to_annotated(row, source=f"{source}#doc{index}", allow_empty=allow_empty)
    doc_id = f"{Path(source).stem}-{index}"
    check_text(doc_id, sdoc.text, source=source, allow_empty=allow_empty)
    group = (
        sdoc.spans[SPAN_KEY]
        if SPAN_KEY in sdoc.spans
        else (next(iter(sdoc.spans.values())) if len(sdoc.spans) else sdoc.ents)
    )
    spans = tuple(Span(s.start_char, s.end_char, s.label_, s.text, id=s.kb_id_ or None) for s in group)
    raw = sdoc.user_data.get(RELATIONS_KEY) if sdoc.user_data else None
    links = [{k: r[k] for k in ("type", "arg1", "arg2")} for r in json.loads(raw)] if raw else []
    return AnnotatedNote(Note(doc_id, sdoc.text, {}), spans, tuple(links))


def write_docbin(docs: Iterable[AnnotatedNote], path: Path | str) -> int:
    """Write a ``.spacy`` DocBin (user data stored) atomically; returns the count."""
    from spacy.tokens import DocBin

    vocab = _vocab()
    db = DocBin(store_user_data=True)
    count = 0
    for doc in docs:
        db.add(note_to_doc(doc, vocab))
        count += 1
    with atomic_writer(path, "wb") as handle:
        handle.write(db.to_bytes())
    return count


def read_docbin(path: Path | str, *, allow_empty: bool = False) -> list[AnnotatedNote]:
    """Read a ``.spacy`` DocBin (ours losslessly; others from spans/ents)."""
    from spacy.tokens import DocBin

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFormatError("file not found", source=str(path)) from None
    try:
        db = DocBin().from_bytes(data)
        sdocs = list(db.get_docs(_vocab()))
    except Exception as exc:  # msgpack/zlib errors
        raise InputFormatError(f"not a spaCy DocBin: {exc}", source=str(path)) from None
    return [doc_to_note(d, index=i, source=str(path), allow_empty=allow_empty) for i, d in enumerate(sdocs, 1)]
