"""File-level de-identification (the ``clinical-nlp deid`` command's library function)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinical_nlp.deid.core import (
    METHOD,
    DeidResult,
    Detector,
    PHISpan,
    Replacement,
    SurrogateMaker,
    apply_replacements,
    deidentify_rows,
    map_span_to_deid,
)
from clinical_nlp.deid.metadata import deidentify_metadata
from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.jsonl import atomic_writer
from clinical_nlp.io.note_rows import iter_note_rows
from clinical_nlp.io.paths import refuse_clashing_paths, refuse_table_suffix

#: longer texts are refused: a clinical note of a million characters is a concatenation or an error
MAX_NOTE_CHARS = 1_000_000


@dataclass(frozen=True)
class DeidSummary:
    notes: int
    phi_spans: int
    patients: int
    labels: dict[str, int]
    method: str = METHOD


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The input rows, checked: every problem names the file, the line and, once known, the note id."""
    rows = []
    seen: set[str] = set()
    for number, row in iter_note_rows(path):  # bad UTF-8, JSON or CSV: named by file and line there
        if "id" not in row or not isinstance(row.get("text"), str):
            raise InputFormatError("row needs an 'id' and a string 'text'", source=str(path), line=number)
        nid = str(row["id"])
        if nid in seen:
            raise InputFormatError(f"duplicate id {row['id']!r}", source=str(path), line=number)
        if not row["text"].strip():
            raise InputFormatError(f"note {nid!r} has an empty text", source=str(path), line=number)
        if len(row["text"]) > MAX_NOTE_CHARS:
            raise InputFormatError(
                f"note {nid!r} has {len(row['text']):,} characters, more than {MAX_NOTE_CHARS:,} "
                "(split it, or it is not a note)",
                source=str(path),
                line=number,
            )
        seen.add(nid)
        rows.append(row)
    if not rows:
        raise InputFormatError("no notes in input (empty file)", source=str(path))
    return rows


def deidentify_file(
    input_path: Path | str,
    output_path: Path | str,
    phi_output: Path | str | None = None,
    *,
    map_output: Path | str | None = None,
    key: bytes | None = None,
    detector: Detector | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    partition_patients: int = 8,
) -> tuple[DeidSummary, list]:
    """De-identify a JSONL file of notes.

    Writes OUT rows (``id``, ``patient``, de-identified ``text``, ``deidentified: true``,
    ``deid_method``, ``offset_map``, ``privacy_review``: the items a privacy officer must decide, offsets
    into the de-identified text; metadata de-identified, see ``deid/metadata.py``), PHI rows (``id``,
    ``spans`` with offsets into the ORIGINAL text, review items included) if ``phi_output`` is given,
    and the surrogate map (PHI!) only when ``map_output`` is given. All files are written atomically.
    ``key`` (bytes) makes surrogates and date shifts reproducible across runs; by default a random key is used.
    ``workers=N`` runs detection on a Dask ``LocalCluster`` of N processes
    (``clinical_nlp.scale.run_partitioned``), each task holding whole patients
    (``partition_patients`` per partition), so the output equals the in-process one.
    Returns the summary and the per-note results.
    """
    input_path = Path(input_path)
    refuse_clashing_paths(
        {"--input": input_path},
        {"--output": Path(output_path), "--phi-output": phi_output, "--map-output": map_output},
    )
    refuse_table_suffix({"--output": output_path, "--phi-output": phi_output, "--map-output": map_output})
    rows = _read_rows(input_path)
    key = key if key is not None else os.urandom(32)
    results = []
    if workers:
        results = _deidentify_dask(rows, key, detector, workers, partition_patients, Path(output_path))
        if progress:
            progress(len(results))
    else:
        for res in deidentify_rows(rows, detector=detector, key=key, source=str(input_path)):
            results.append(res)
            if progress:
                progress(1)
    by_id = {str(r["id"]): r for r in rows}
    method = detector.method if detector is not None else METHOD
    metadata = _MetadataDeid(SurrogateMaker(key), detector)
    with atomic_writer(output_path) as out:
        for res in results:
            src = by_id[res.id]
            row = metadata(src, res)
            row.update(
                {
                    "id": res.id,
                    "text": res.text,
                    "deidentified": True,
                    "deid_method": method,
                    "offset_map": [[r.orig_start, r.orig_end, r.deid_start, r.deid_end] for r in res.offset_map],
                    "privacy_review": review_items(res),
                }
            )
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    if phi_output is not None:
        with atomic_writer(phi_output) as out:
            for res in results:
                out.write(json.dumps({"id": res.id, "spans": [s.to_dict() for s in res.spans]}) + "\n")
    if map_output is not None:
        with atomic_writer(map_output) as out:
            for res in results:
                out.write(
                    json.dumps({"id": res.id, "patient": res.patient, "surrogates": res.surrogates}, ensure_ascii=False)
                    + "\n"
                )
    labels: dict[str, int] = {}
    for res in results:
        for s in res.spans:
            labels[s.label] = labels.get(s.label, 0) + 1
    summary = DeidSummary(
        len(results),
        sum(labels.values()),
        len({str(r.get("patient")) for r in rows if r.get("patient") is not None}),
        labels,
        method,
    )
    return summary, results


def review_items(res: DeidResult) -> list[dict[str, Any]]:
    """The note's privacy review items with offsets into its DE-IDENTIFIED text (where the surrogate is)
    and, as ``orig_start``/``orig_end``, into the original (where the officer finds the words)."""
    out = []
    for s in res.spans:
        if s.review:
            a, b = map_span_to_deid(s.start, s.end, res.offset_map)
            out.append(
                {"start": a, "end": b, "label": s.label, "reason": s.review, "orig_start": s.start, "orig_end": s.end}
            )
    return out


@dataclass
class _MetadataDeid:
    """De-identifies each row's metadata with the run's key (the detector is loaded only if needed)."""

    maker: SurrogateMaker
    detector: Detector | None

    def __call__(self, src: dict[str, Any], res: Any) -> dict[str, Any]:
        patient = res.patient if res.patient is not None else f"note:{res.id}"

        def detect(value: str) -> str:
            if self.detector is None:
                self.detector = Detector()
            new, _, _ = apply_replacements(value, self.detector.detect(value), patient, self.maker)
            return new

        return deidentify_metadata(
            src,
            patient=patient,
            pseudonym=self.maker.pseudonym,
            shift_days=self.maker.date_shift(patient),
            surrogates=res.surrogates,
            detect=detect,
        )


# ------------------------------------------------------------------ Dask (--workers)
_DETECTORS: dict[int, Detector] = {}


@dataclass(frozen=True)
class DeidBundleFn:
    """Picklable partition function for ``run_partitioned``: each input row is a bundle holding
    all notes of one patient (or one patient-less note); the detector is built once per process."""

    key: bytes
    detector: Detector | None = None

    def __call__(self, bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
        det = self.detector
        if det is None:
            det = _DETECTORS.get(0) or _DETECTORS.setdefault(0, Detector())
        out = []
        for bundle in bundles:
            res = list(deidentify_rows(bundle["rows"], detector=det, key=self.key, source=bundle["id"]))
            out.append(
                {
                    "id": bundle["id"],
                    "results": [
                        {
                            "id": r.id,
                            "patient": r.patient,
                            "text": r.text,
                            "spans": [s.to_dict() for s in r.spans],
                            "offset_map": [
                                [m.orig_start, m.orig_end, m.deid_start, m.deid_end, m.label] for m in r.offset_map
                            ],
                            "surrogates": r.surrogates,
                        }
                        for r in res
                    ],
                }
            )
        return out


def _deidentify_dask(
    rows: list[dict[str, Any]],
    key: bytes,
    detector: Detector | None,
    workers: int,
    partition_patients: int,
    output_path: Path,
) -> list[DeidResult]:
    import tempfile

    from clinical_nlp.scale import run_partitioned

    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        g = f"p:{row['patient']}" if row.get("patient") is not None else f"n:{i}"
        groups.setdefault(g, []).append(i)
    tmpdir = Path(tempfile.mkdtemp(prefix=".deid-", dir=output_path.parent if output_path.parent.exists() else None))
    try:
        bundles_path, results_path = tmpdir / "bundles.jsonl", tmpdir / "results.jsonl"
        with bundles_path.open("w", encoding="utf-8") as handle:
            for n, idx in enumerate(groups.values()):
                handle.write(
                    json.dumps(
                        {"id": f"bundle-{n}", "text": "bundle", "index": idx, "rows": [rows[i] for i in idx]},
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        run_partitioned(
            bundles_path,
            results_path,
            DeidBundleFn(key, detector),
            workers=workers,
            partition_size=max(1, partition_patients),
            progress=False,
        )
        by_index: dict[int, DeidResult] = {}
        with bundles_path.open(encoding="utf-8") as bh, results_path.open(encoding="utf-8") as rh:
            for bline, rline in zip(bh, rh, strict=True):
                idx = json.loads(bline)["index"]
                for i, r in zip(idx, json.loads(rline)["results"], strict=True):
                    by_index[i] = DeidResult(
                        r["id"],
                        r["patient"],
                        r["text"],
                        [PHISpan(s["start"], s["end"], s["label"], s.get("review")) for s in r["spans"]],
                        [Replacement(*m) for m in r["offset_map"]],
                        r["surrogates"],
                    )
        return [by_index[i] for i in range(len(rows))]
    finally:
        import shutil

        shutil.rmtree(tmpdir, ignore_errors=True)
