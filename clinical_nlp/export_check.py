"""Read an export back and count what its format actually lost.

``export.LOSSES`` says what a format *cannot* hold; this module says what a given export *did*
lose: every written split is read back with the format's own reader and compared with the
documents that went in (texts, spans by offsets and label, non-default attributes, links). The
figures go into the manifest as ``read_back``, so a corpus whose CoNLL file silently merged two
nested findings says so in numbers.

    >>> from clinical_nlp.types import AnnotatedNote, Note, Span
    >>> doc = AnnotatedNote(Note("a", "chest pain"), (Span(0, 10, "Condition"), Span(6, 10, "Condition")))
    >>> compare([doc], {"a": AnnotatedNote(Note("a", "chest pain"), (Span(0, 10, "Condition"),))})["spans_lost"]
    1
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clinical_nlp.consensus.relations import binary_relations
from clinical_nlp.types import ATTRIBUTE_DEFAULTS, AnnotatedNote, Span

#: The file (or folder) each format writes per split, as ``export._write_format`` names it.
_SPLIT_PATHS = {"jsonl": "{}.jsonl", "docbin": "{}.spacy", "conll": "{}.conll", "brat": "{}", "parquet": "{}.parquet"}

SpanKey = tuple[int, int, str, tuple[tuple[int, int], ...] | None]


def read_back(fmt: str, directory: Path, splits: Sequence[str]) -> dict[str, AnnotatedNote]:
    """The documents of every split in ``directory`` (an export's folder), by id, read by the format's reader."""
    if fmt == "hf":
        from clinical_nlp.export import read_hf_dataset

        return {d.id: d for docs in read_hf_dataset(directory / "dataset").values() for d in docs}
    from clinical_nlp.io.registry import read_corpus

    reader = {"parquet": "dataframe"}.get(fmt, fmt)
    out: dict[str, AnnotatedNote] = {}
    for split in splits:
        for doc in read_corpus(directory / _SPLIT_PATHS[fmt].format(split), reader, allow_empty=True):
            out[doc.id] = doc
    return out


def _key(span: Span) -> SpanKey:
    return (span.start, span.end, span.label, span.fragments)


def _attributes(span: Span) -> dict[str, str]:
    return {k: v for k, v in span.attributes.items() if ATTRIBUTE_DEFAULTS.get(k) != v}


def _links(doc: AnnotatedNote) -> Counter[tuple[str, SpanKey | str, SpanKey | str]]:
    by_id: dict[str, SpanKey] = {str(s.id): _key(s) for s in doc.spans if s.id is not None}
    return Counter((kind, by_id.get(a, a), by_id.get(b, b)) for kind, a, b in binary_relations(doc.relations))


def compare(written: Sequence[AnnotatedNote], back: Mapping[str, AnnotatedNote]) -> dict[str, Any]:
    """Counts of what did not come back: documents, texts, spans (by label), attributes, links, metadata keys."""
    lost_by_label: Counter[str] = Counter()
    added = attributes_lost = links_lost = texts = metadata = missing = 0
    for doc in written:
        other = back.get(doc.id)
        if other is None:
            missing += 1
            lost_by_label.update(s.label for s in doc.spans)
            links_lost += sum(_links(doc).values())
            continue
        texts += other.text != doc.text
        metadata += any(other.note.metadata.get(k) != v for k, v in doc.note.metadata.items())
        mine = Counter(_key(s) for s in doc.spans)
        theirs = Counter(_key(s) for s in other.spans)
        lost_by_label.update(key[2] for key in (mine - theirs).elements())
        added += sum((theirs - mine).values())
        returned = {_key(s): _attributes(s) for s in other.spans}
        attributes_lost += sum(
            1 for s in doc.spans if _attributes(s) and _key(s) in returned and returned[_key(s)] != _attributes(s)
        )
        links_lost += sum((_links(doc) - _links(other)).values())
    return {
        "documents_missing": missing,
        "texts_changed": texts,
        "documents_with_metadata_lost": metadata,
        "spans_lost": sum(lost_by_label.values()),
        "spans_lost_by_label": dict(sorted(lost_by_label.items())),
        "spans_added": added,
        "spans_with_attributes_lost": attributes_lost,
        "links_lost": links_lost,
    }


def summary(check: Mapping[str, Any]) -> str:
    """One line naming each non-zero loss, or '' when the export reads back whole."""
    names = {
        "documents_missing": "documents missing",
        "texts_changed": "texts changed",
        "documents_with_metadata_lost": "documents lost metadata",
        "spans_lost": "spans lost or altered",
        "spans_added": "spans read back that were not written",
        "spans_with_attributes_lost": "spans lost attributes",
        "links_lost": "relation links lost",
    }
    parts = [f"{check[k]} {label}" for k, label in names.items() if check.get(k)]
    return "; ".join(parts)


__all__ = ["compare", "read_back", "summary"]
