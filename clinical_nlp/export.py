"""Training-corpus exports with a manifest (a training run can prove which data it used).

Formats: ``jsonl`` (lossless), ``docbin`` (spaCy DocBin, train/dev split by
patient), ``conll`` (BIO, lossy), ``brat``, ``hf`` (Hugging Face ``datasets``
saved to disk, Arrow) and ``parquet`` (span table via pandas). Each export
writes a folder ``PATH`` holding the data files and ``manifest.json``: counts
per label, guideline and model versions, sha256 of every exported file, split
sizes, and what the format dropped.

Example:
    >>> from clinical_nlp.io.jsonl import read_jsonl
    >>> docs = read_jsonl("corpora/chia/dev.jsonl", allow_empty=True)        # doctest: +SKIP
    >>> manifest = export_corpus(docs, "out/chia_docbin", "docbin")          # doctest: +SKIP
    >>> manifest["splits"]                                                   # doctest: +SKIP
    {'train': 36, 'dev': 4}
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from clinical_nlp.consensus.relations import binary_relations
from clinical_nlp.errors import ClinicalNLPError, InputFormatError
from clinical_nlp.export_check import compare
from clinical_nlp.export_check import read_back as read_back_export
from clinical_nlp.faults import crash_point
from clinical_nlp.hashing import file_sha256
from clinical_nlp.io.jsonl import annotated_to_row
from clinical_nlp.types import AnnotatedNote, Note

EXPORT_FORMATS: tuple[str, ...] = ("jsonl", "docbin", "conll", "brat", "hf", "parquet")
_ALIASES = {
    "spacy": "docbin",
    "bio": "conll",
    "arrow": "hf",
    "datasets": "hf",
    "huggingface": "hf",
    "json": "jsonl",
    "standoff": "brat",
}

#: What each format cannot hold (recorded in the manifest as ``dropped``).
LOSSES: dict[str, list[str]] = {
    "jsonl": [],
    "docbin": [],
    "conll": [
        "overlapping spans (longest kept)",
        "discontinuous fragments (outer bounds only)",
        "attributes",
        "scores/sources",
        "relations",
        "exact whitespace",
        "metadata (patient, source …)",
    ],
    "brat": ["scores/sources"],
    "hf": ["relation groups (Chia's OR 'args') as links between consecutive members"],
    "parquet": [],
}


def patient_of(note: Note) -> str:
    """The grouping key for splits: ``patient``, else ``trial`` (Chia), else the note id."""
    for key in ("patient", "trial", "patient_id"):
        value = note.metadata.get(key)
        if value not in (None, ""):
            return str(value)
    return note.id


def split_by_patient(
    docs: Sequence[AnnotatedNote], dev_fraction: float = 0.2, seed: int = 13
) -> tuple[list[AnnotatedNote], list[AnnotatedNote]]:
    """Deterministic train/dev split with no patient in both; at least one dev patient when >1 patient."""
    if not 0 <= dev_fraction < 1:
        raise ClinicalNLPError(f"dev fraction must be in [0, 1), not {dev_fraction}")
    patients = sorted({patient_of(d.note) for d in docs})
    rng = random.Random(seed)
    rng.shuffle(patients)
    n_dev = round(len(patients) * dev_fraction)
    if dev_fraction > 0 and n_dev == 0 and len(patients) > 1:
        n_dev = 1
    dev_patients = set(patients[:n_dev])
    train = [d for d in docs if patient_of(d.note) not in dev_patients]
    dev = [d for d in docs if patient_of(d.note) in dev_patients]
    return train, dev


def _hf_rows(docs: Iterable[AnnotatedNote]) -> list[dict[str, Any]]:
    rows = []
    for d in docs:
        rows.append(
            {
                "id": d.note.id,
                "text": d.note.text,
                "metadata": json.dumps(dict(d.note.metadata), ensure_ascii=False, sort_keys=True),
                "spans": [
                    {
                        "start": s.start,
                        "end": s.end,
                        "label": s.label,
                        "text": s.text,
                        "attributes": json.dumps(dict(s.attributes), sort_keys=True),
                        "score": s.score,
                        "source": s.source,
                        "fragments": [list(f) for f in s.fragments] if s.fragments else [],
                        "id": s.id,
                    }
                    for s in d.spans
                ],
                "relations": [{"type": t, "arg1": a, "arg2": b} for t, a, b in binary_relations(d.relations)],
            }
        )
    return rows


def write_hf_dataset(splits: dict[str, list[AnnotatedNote]], directory: Path) -> None:
    """Save a ``datasets.DatasetDict`` (one split per key) to ``directory`` (Arrow)."""
    import datasets

    datasets.disable_progress_bars()
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            "metadata": datasets.Value("string"),
            "spans": [
                {
                    "start": datasets.Value("int64"),
                    "end": datasets.Value("int64"),
                    "label": datasets.Value("string"),
                    "text": datasets.Value("string"),
                    "attributes": datasets.Value("string"),
                    "score": datasets.Value("float64"),
                    "source": datasets.Value("string"),
                    "fragments": [[datasets.Value("int64")]],
                    "id": datasets.Value("string"),
                }
            ],
            "relations": [
                {"type": datasets.Value("string"), "arg1": datasets.Value("string"), "arg2": datasets.Value("string")}
            ],
        }
    )
    dd = datasets.DatasetDict(
        {name: datasets.Dataset.from_list(_hf_rows(docs), features=features) for name, docs in splits.items()}
    )
    dd.save_to_disk(str(directory))


def read_hf_dataset(directory: Path | str) -> dict[str, list[AnnotatedNote]]:
    """Read a dataset saved by :func:`write_hf_dataset` back into annotated notes (per split)."""
    import datasets

    from clinical_nlp.types import Span

    dd = datasets.load_from_disk(str(directory))
    out: dict[str, list[AnnotatedNote]] = {}
    for name in dd:
        docs = []
        for row in dd[name]:
            spans = tuple(
                Span(
                    s["start"],
                    s["end"],
                    s["label"],
                    s["text"],
                    json.loads(s["attributes"]),
                    s["score"],
                    s["source"],
                    tuple(tuple(f) for f in s["fragments"]) if s["fragments"] else None,
                    s["id"],
                )
                for s in row["spans"]
            )
            links = tuple(dict(r) for r in row.get("relations") or [])
            docs.append(AnnotatedNote(Note(row["id"], row["text"], json.loads(row["metadata"])), spans, links))
        out[name] = docs
    return out


def _write_format(fmt: str, docs: list[AnnotatedNote], directory: Path, stem: str) -> None:
    from clinical_nlp.io.registry import write_corpus

    if fmt == "jsonl":
        write_corpus(docs, directory / f"{stem}.jsonl", "jsonl")
    elif fmt == "docbin":
        write_corpus(docs, directory / f"{stem}.spacy", "docbin")
    elif fmt == "conll":
        write_corpus(docs, directory / f"{stem}.conll", "conll", overlap="longest")
    elif fmt == "brat":
        write_corpus(docs, directory / stem, "brat")
    elif fmt == "parquet":
        write_corpus(docs, directory / f"{stem}.parquet", "dataframe")


def export_corpus(
    docs: Iterable[AnnotatedNote],
    output: Path | str,
    fmt: str,
    *,
    dev_fraction: float = 0.2,
    seed: int = 13,
    guideline_version: str | None = None,
    model_versions: Iterable[str] = (),
    source: str | None = None,
    audit_head: str | None = None,
    extra: dict[str, Any] | None = None,
    before_publish: Any = None,
) -> dict[str, Any]:
    """Export ``docs`` to the folder ``output`` in ``fmt`` and write ``manifest.json``; returns the manifest.

    Every format is split into ``train``/``dev`` by patient (:func:`patient_of`);
    ``dev_fraction=0`` writes everything to ``train``. The folder appears
    atomically (built beside it, then renamed); an existing ``output`` is an error.
    """
    name = _ALIASES.get(fmt.lower().strip(), fmt.lower().strip())
    if name not in EXPORT_FORMATS:
        raise InputFormatError(f"unknown export format {fmt!r} (known: {', '.join(EXPORT_FORMATS)})")
    output = Path(output)
    if output.exists():
        raise ClinicalNLPError(f"{output}: already exists; choose a new export folder")
    docs = list(docs)
    if not docs:
        raise InputFormatError("nothing to export: no annotated documents")
    seen: set[str] = set()
    for d in docs:
        if d.id in seen:
            raise InputFormatError(f"document {d.id!r} twice in the export: one document per note")
        seen.add(d.id)
    train, dev = split_by_patient(docs, dev_fraction, seed)
    splits = {"train": train, "dev": dev} if dev else {"train": train}
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    try:
        if name == "hf":
            write_hf_dataset(splits, tmp / "dataset")
        else:
            for split, split_docs in splits.items():
                _write_format(name, split_docs, tmp, split)
        read_back = compare(docs, read_back_export(name, tmp, list(splits)))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        labels = Counter(s.label for d in docs for s in d.spans)
        manifest = {
            "format": name,
            "source": source,
            "documents": len(docs),
            "spans": sum(labels.values()),
            "labels": dict(sorted(labels.items())),
            "splits": {k: len(v) for k, v in splits.items()},
            "split_patients": {k: len({patient_of(d.note) for d in v}) for k, v in splits.items()},
            "split_seed": seed,
            "dev_fraction": dev_fraction,
            "guideline_version": guideline_version,
            "model_versions": sorted(set(model_versions)),
            "dropped": LOSSES[name],
            "read_back": read_back,
            "files": {str(p.relative_to(tmp)): file_sha256(p) for p in files},
            "audit_head": audit_head,
            **(extra or {}),
        }
        manifest["content_hash"] = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        crash_point("export.written")
        if before_publish is not None:
            before_publish(manifest)  # e.g. the audit entry: recorded before the folder appears
        os.replace(tmp, output)
        crash_point("export.renamed")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def gold_from_store(
    store: Any, policy: Any = None
) -> tuple[list[AnnotatedNote], str | None, list[str], list[dict[str, str]]]:
    """Gold annotations joined with their notes, one document per note by the precedence of
    :mod:`clinical_nlp.services.gold`: (docs, guideline versions, model versions, excluded items)."""
    from clinical_nlp.services.gold import resolve_gold

    anns = store.annotations(kind="gold")
    if not anns:
        raise ClinicalNLPError("the store holds no gold annotations (run consensus first)")
    chosen, excluded = resolve_gold(anns, policy)
    notes = {n.id: n for n in store.notes(list(chosen))}
    docs, versions, models = [], set(), set()
    for item, a in chosen.items():
        if item not in notes:
            raise ClinicalNLPError(f"gold annotation for item {item!r} has no note in the store")
        docs.append(AnnotatedNote(notes[item], a.spans, tuple(a.relations)))
        if a.guideline_version:
            versions.add(a.guideline_version)
        if a.model_version:
            models.add(a.model_version)
    gv = ",".join(sorted(versions)) or None
    return docs, gv, sorted(models), [{"item": e.item, "reason": e.reason} for e in excluded]


def _open_work_gate(store: Any, docs: Sequence[AnnotatedNote], schema: Any, override: str | None, actor: str) -> None:
    """Refuse (PolicyError) while the exported notes have pending adjudications or unmet QA reviews;
    ``override`` (a reason) lets a named actor export anyway, recorded as an ``override`` audit entry."""
    from clinical_nlp.audit import AuditLog
    from clinical_nlp.errors import PolicyError
    from clinical_nlp.qa import raise_unmet, unreviewed
    from clinical_nlp.services.adjudication import pending

    ids = {d.id for d in docs}
    open_items = sorted({e.item for e in pending(store)} & ids)
    problems = []
    if open_items:
        shown = ", ".join(open_items[:20]) + (f" … (+{len(open_items) - 20} more)" if len(open_items) > 20 else "")
        problems.append(f"{len(open_items)} note(s) still await adjudication: {shown}")
    try:
        raise_unmet(unreviewed(store, [(d.id, s.label) for d in docs for s in d.spans], schema))
    except PolicyError as exc:
        problems.append(str(exc))
    if not problems:
        return
    if override is None or not override.strip():
        raise PolicyError("export refused: " + "; ".join(problems) + " (finish that work, or --override REASON)")
    AuditLog(store).append(
        "override", actor=actor, details={"rule": "export with open work", "reason": override, "open": problems}
    )


def _export_audited(
    store: Any, docs: list[AnnotatedNote], output: Path | str, fmt: str, *, actor: str, extra: dict[str, Any], **kw: Any
) -> dict[str, Any]:
    """Verify the audit trail (chain, head, every row), export with its head in the manifest, audit the export."""
    from clinical_nlp.audit import AuditLog

    log = AuditLog(store)
    log.verify()
    log.verify_rows()
    head = log.head()

    def audit(manifest: dict[str, Any]) -> None:
        log.append(
            "export",
            actor=actor,
            details={
                "format": manifest["format"],
                "output": str(output),
                "documents": manifest["documents"],
                "content_hash": manifest["content_hash"],
                "files": manifest["files"],
                "audit_head": head,
                "source": manifest["source"],
                "read_back": manifest["read_back"],
            },
        )

    manifest = export_corpus(docs, output, fmt, audit_head=head, extra=extra, before_publish=audit, **kw)
    return manifest


def export_from_store(
    project: Any,
    output: Path | str,
    fmt: str,
    *,
    actor: str = "cli",
    dev_fraction: float = 0.2,
    seed: int = 13,
    check_qa: bool = True,
    override: str | None = None,
) -> dict[str, Any]:
    """Export the project's gold (one document per note) after the open-work gate (pending adjudications,
    QA reviews) and an audit check; records an ``export`` audit entry; the manifest carries the audit head."""
    from clinical_nlp.qa import require_qa_coverage
    from clinical_nlp.store import Store, shown_url

    store = Store(project.store_url)
    schema = project.guideline().schema
    docs, gv, models, excluded = gold_from_store(store, schema.gold)
    if check_qa:
        _open_work_gate(store, docs, schema, override, actor)
        if override is None:
            require_qa_coverage(store, labels=sorted({s.label for d in docs for s in d.spans}), schema=schema)
    return _export_audited(
        store,
        docs,
        output,
        fmt,
        actor=actor,
        extra={"excluded": excluded, "gold_precedence": "adjudicated > consensus > imported > single annotator"},
        dev_fraction=dev_fraction,
        seed=seed,
        guideline_version=gv,
        model_versions=models,
        source=f"store:{shown_url(project.store_url)}",
    )


UNKNOWN_LABEL_POLICIES = ("refuse", "drop", "keep")


def _unknown_labels(
    docs: list[AnnotatedNote], known: Sequence[str], policy: str, *, source: str
) -> tuple[list[AnnotatedNote], dict[str, int]]:
    """Spans whose label the project's schema does not define: ``refuse`` names the first, ``drop``
    removes them (and the links naming them), ``keep`` exports them; returns (docs, count per label)."""
    if policy not in UNKNOWN_LABEL_POLICIES:
        raise InputFormatError(f"unknown-labels must be one of {', '.join(UNKNOWN_LABEL_POLICIES)}, not {policy!r}")
    names = set(known)
    outside = Counter(s.label for d in docs for s in d.spans if s.label not in names)
    if not outside or policy == "keep":
        return docs, dict(sorted(outside.items()))
    if policy == "refuse":
        doc, span = next((d, s) for d in docs for s in d.spans if s.label not in names)
        raise InputFormatError(
            f"{source}: document {doc.id!r}: span [{span.start}, {span.end}) has label {span.label!r}, which the "
            f"project's label schema does not define (known: {', '.join(known)}); --unknown-labels drop or keep"
        )
    kept_docs = [doc.keeping_labels(names) for doc in docs]
    return kept_docs, dict(sorted(outside.items()))


def export_from_file(
    input: Path | str,
    output: Path | str,
    fmt: str,
    *,
    project: Any,
    actor: str = "cli",
    override: str | None = None,
    unknown_labels: str = "refuse",
    **kwargs: Any,
) -> dict[str, Any]:
    """Export a gold file (any format :func:`read_corpus` reads) under ``project``'s gates: its notes must
    have no pending adjudication and the QA policy must be met for its labels; audited like a store export.
    Labels the project's schema does not define are refused unless ``unknown_labels`` is ``drop`` or ``keep``."""
    from clinical_nlp.io.registry import read_corpus
    from clinical_nlp.store import Store

    docs = read_corpus(input, allow_empty=True)
    schema = project.guideline().schema
    docs, outside = _unknown_labels(docs, schema.label_names, unknown_labels, source=str(input))
    store = Store(project.store_url)
    _open_work_gate(store, docs, schema, override, actor)
    kwargs.setdefault("source", Path(input).name)
    return _export_audited(
        store,
        docs,
        output,
        fmt,
        actor=actor,
        extra={
            "input_sha256": file_sha256(Path(input)) if Path(input).is_file() else None,
            "labels_outside_schema": {"policy": unknown_labels, "spans": outside},
        },
        **kwargs,
    )


__all__ = [
    "EXPORT_FORMATS",
    "LOSSES",
    "annotated_to_row",
    "export_corpus",
    "export_from_file",
    "export_from_store",
    "gold_from_store",
    "patient_of",
    "read_hf_dataset",
    "split_by_patient",
    "write_hf_dataset",
]
