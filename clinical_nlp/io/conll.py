"""CoNLL / BIO: one token per line, documents separated by ``-DOCSTART-`` comments.

Layout written (tab-separated)::

    # doc_id = NCT01_exc
    # text = "Intolerance or allergy ..."        (JSON string: the exact note text)
    Intolerance<TAB>0<TAB>11<TAB>B-Condition
    or<TAB>12<TAB>14<TAB>O
    <blank line between sentences / lines of the note>

Tokenization (:func:`tokenize`) is deterministic: runs of letters/digits and
single punctuation characters, each with its character offsets, so offsets
are preserved exactly. When the ``# text`` comment is present the reader
restores the exact text; plain 2-column CoNLL (``token label``) is accepted
too and the text is rebuilt by joining tokens with single spaces.

**Lossy.** BIO cannot hold: overlapping or nested spans, discontinuous spans
(written as their outer range), attributes, relations, span ids, scores and
metadata other than the document id. Span boundaries inside a token are widened
to whole tokens. Overlapping spans are an error by default
(``overlap="error"``); ``overlap="longest"`` keeps the longest span of each
overlapping cluster (ties: earliest start, then label), a documented policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from clinical_nlp.errors import InputFormatError
from clinical_nlp.io._common import check_text, read_utf8
from clinical_nlp.io.jsonl import atomic_writer
from clinical_nlp.types import AnnotatedNote, Note, Span

OverlapPolicy = Literal["error", "longest"]
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> list[tuple[int, int, str]]:
    """Deterministic tokens ``(start, end, token)``: word runs and single punctuation marks.

    Example:
        >>> tokenize("No fever, 38.5C")
        [(0, 2, 'No'), (3, 8, 'fever'), (8, 9, ','), (10, 12, '38'), (12, 13, '.'), (13, 15, '5C')]
    """
    return [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


def resolve_overlaps(doc: AnnotatedNote, policy: OverlapPolicy = "error") -> list[Span]:
    """Spans without overlaps (outer ranges), or an error naming the overlapping pair."""
    ordered = sorted(doc.spans, key=lambda s: (s.start, -(s.end - s.start), s.label))
    if policy == "error":
        for a, b in zip(ordered, ordered[1:], strict=False):
            if b.start < a.end:
                raise InputFormatError(
                    f"document {doc.id!r}: spans {a.label!r} [{a.start}, {a.end}) and {b.label!r} "
                    f"[{b.start}, {b.end}) overlap, which BIO cannot represent "
                    "(use overlap='longest' / --overlap longest to keep the longest)"
                )
        return ordered
    if policy != "longest":
        raise ValueError(f"unknown overlap policy {policy!r}")
    kept: list[Span] = []
    for span in sorted(doc.spans, key=lambda s: (-(s.end - s.start), s.start, s.label)):
        if all(span.end <= k.start or k.end <= span.start for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def document_to_conll(doc: AnnotatedNote, *, overlap: OverlapPolicy = "error") -> str:
    """The CoNLL block of one document (see module doc)."""
    spans = resolve_overlaps(doc, overlap)
    tokens = tokenize(doc.text)
    tags = ["O"] * len(tokens)
    for span in spans:
        inside = [i for i, (a, b, _) in enumerate(tokens) if a < span.end and span.start < b]
        if any(tags[i] != "O" for i in inside):
            # two spans inside one token (only possible when boundaries split a token)
            if overlap == "error":
                raise InputFormatError(
                    f"document {doc.id!r}: span {span.label!r} [{span.start}, {span.end}) "
                    "shares a token with another span"
                )
            continue
        for k, i in enumerate(inside):
            tags[i] = ("B-" if k == 0 else "I-") + span.label
    lines = [f"# doc_id = {doc.id}", f"# text = {json.dumps(doc.text, ensure_ascii=False)}"]
    prev_end = 0
    for (a, b, tok), tag in zip(tokens, tags, strict=True):
        if "\n" in doc.text[prev_end:a] and lines[-1] != "":
            lines.append("")
        lines.append(f"{tok}\t{a}\t{b}\t{tag}")
        prev_end = b
    return "\n".join(lines).rstrip("\n") + "\n\n"


def write_conll(docs: Iterable[AnnotatedNote], path: Path | str, *, overlap: OverlapPolicy = "error") -> int:
    """Write documents as CoNLL/BIO atomically; returns the document count."""
    count = 0
    with atomic_writer(path) as handle:
        for doc in docs:
            handle.write(document_to_conll(doc, overlap=overlap))
            count += 1
    return count


def read_conll(path: Path | str, *, allow_empty: bool = False) -> list[AnnotatedNote]:
    """Read CoNLL/BIO written by :func:`write_conll` or plain ``token label`` columns."""
    source = str(path)
    content = read_utf8(path)
    docs: list[AnnotatedNote] = []
    state: dict = {}

    def flush() -> None:
        if not state:
            return
        doc_id = state.get("id") or f"{Path(path).stem}-{len(docs) + 1}"
        toks = state["tokens"]
        if "text" in state:
            text = state["text"]
        else:  # rebuild text from tokens
            pieces: list[str] = []
            pos, rebuilt = 0, []
            for tok, _a, _b, tag, line in toks:
                if pieces:
                    pos += 1
                pieces.append(tok)
                rebuilt.append((tok, pos, pos + len(tok), tag, line))
                pos += len(tok)
            text, toks = " ".join(pieces), rebuilt
        check_text(doc_id, text, source=source, line=state["line"], allow_empty=allow_empty)
        spans: list[Span] = []
        current: list = []  # [label, start, end]
        for tok, a, b, tag, line in toks:
            if a is None or text[a:b] != tok:
                raise InputFormatError(
                    f"document {doc_id!r}: token {tok!r} does not match the text at [{a}, {b})",
                    source=source,
                    line=line,
                )
            if tag == "O":
                if current:
                    spans.append(Span(current[1], current[2], current[0], text[current[1] : current[2]]))
                current = []
                continue
            prefix, _, label = tag.partition("-")
            if prefix not in {"B", "I"} or not label:
                raise InputFormatError(f"document {doc_id!r}: bad BIO tag {tag!r}", source=source, line=line)
            if prefix == "I" and current and current[0] == label:
                current[2] = b
            else:  # B-, or an I- that starts a span (lenient IOB1)
                if current:
                    spans.append(Span(current[1], current[2], current[0], text[current[1] : current[2]]))
                current = [label, a, b]
        if current:
            spans.append(Span(current[1], current[2], current[0], text[current[1] : current[2]]))
        docs.append(AnnotatedNote(Note(doc_id, text, {}), tuple(spans)))
        state.clear()

    for number, line in enumerate(content.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("-DOCSTART-") or stripped.startswith("# doc_id = "):
            flush()
            state.update(line=number, tokens=[])
            if stripped.startswith("# doc_id = "):
                state["id"] = stripped[len("# doc_id = ") :]
            continue
        if stripped.startswith("# text = "):
            state.setdefault("tokens", [])
            state.setdefault("line", number)
            try:
                state["text"] = json.loads(stripped[len("# text = ") :])
            except json.JSONDecodeError as exc:
                raise InputFormatError(
                    f"'# text' comment is not a JSON string: {exc.msg}", source=source, line=number
                ) from None
            continue
        if not stripped or stripped.startswith("#"):
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        state.setdefault("tokens", [])
        state.setdefault("line", number)
        if len(cols) >= 4:
            try:
                a, b = int(cols[1]), int(cols[2])
            except ValueError:
                raise InputFormatError(
                    f"columns 2-3 must be character offsets, got {cols[1:3]}", source=source, line=number
                ) from None
            state["tokens"].append((cols[0], a, b, cols[-1], number))
        elif len(cols) >= 2:
            if "text" in state:
                raise InputFormatError(
                    "token line without offsets in a document with '# text'", source=source, line=number
                )
            state["tokens"].append((cols[0], None, None, cols[-1], number))
        else:
            raise InputFormatError(
                f"expected 'token<TAB>label' or 'token<TAB>start<TAB>end<TAB>label', got {line!r}",
                source=source,
                line=number,
            )
    flush()
    if not docs:
        raise InputFormatError("no documents found", source=source)
    return docs
