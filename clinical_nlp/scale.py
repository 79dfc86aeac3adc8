"""Scale-out execution on ``dask.distributed``: pre-annotate (or any per-note function) a large corpus.

The corpus is streamed in partitions of ``partition_size`` notes; at most
``max_in_flight`` partitions are submitted at any time, so the client never
holds the whole corpus. Each worker process builds the spaCy pipeline once
(cached per process, keyed by the pipeline options) and reuses it for every
partition it runs. A partition that raises is resubmitted up to ``retries``
times (the retries are counted and reported); an input error (a bad row) is
never retried and aborts the run. Results are written in input order to a
temp file beside the output and renamed at the end, so the output holds every
input note exactly once or does not exist.

Example:
    >>> stats = preannotate_file("notes.jsonl", "out.jsonl", workers=2)   # doctest: +SKIP
    >>> stats.notes, stats.retries                                          # doctest: +SKIP
    (300, 0)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinical_nlp.errors import ClinicalNLPError, InputFormatError
from clinical_nlp.io.jsonl import atomic_writer, row_to_note
from clinical_nlp.io.note_rows import is_parquet, iter_note_rows, parquet_record, parquet_schema

#: Span fields always present in pre-annotation output rows.
SPAN_FIELDS = ("start", "end", "label", "text", "negation", "temporality", "experiencer", "score", "source")
_SPAN_DEFAULTS = {
    "negation": "affirmed",
    "temporality": "recent",
    "experiencer": "patient",
    "score": None,
    "source": None,
}

Row = dict[str, Any]
PartitionFn = Callable[[list[Row]], list[Row]]


class PartitionError(ClinicalNLPError):
    """A partition failed on every attempt; the message names its input lines and the cause."""


@dataclass
class ScaleStats:
    """What a run did: notes written, partitions, retries (partition index -> attempts) and workers."""

    notes: int = 0
    partitions: int = 0
    retries: int = 0
    retried_partitions: dict[int, int] = field(default_factory=dict)
    workers: int = 0
    output: str = ""
    model_version: str | None = None
    #: perf_counter() when the first partition's rows were written / when the last were (steady-state rate)
    first_written_at: float | None = None
    first_partition_notes: int = 0
    last_written_at: float | None = None

    def steady_notes_per_s(self) -> float | None:
        """Throughput after the first partition (excludes cluster start and pipeline build)."""
        if self.first_written_at is None or self.last_written_at is None:
            return None
        span = self.last_written_at - self.first_written_at
        return (self.notes - self.first_partition_notes) / span if span > 0 else None


# ---------------------------------------------------------------- input / output
def iter_input_rows(path: Path | str, *, batch_rows: int = 1024) -> Iterator[tuple[int, Row]]:
    """Stream ``(line_or_row_number, row)`` from JSONL, Parquet or a CSV notes table, validating ``id``/``text``.

    A bad row or a repeated ``id`` raises :class:`InputFormatError` naming the file and line (row);
    nothing is written by the caller then (outputs are atomic).
    """
    seen: dict[str, int] = {}
    for number, row in iter_note_rows(path, batch_rows=batch_rows):
        row_to_note(row, source=str(path), line=number, allow_empty=True)
        first = seen.setdefault(str(row["id"]), number)
        if first != number:
            raise InputFormatError(f"duplicate id {row['id']!r} (first on line {first})", source=str(path), line=number)
        yield number, row


def _partitions(rows: Iterable[tuple[int, Row]], size: int) -> Iterator[tuple[int, int, list[Row]]]:
    part: list[Row] = []
    first = None
    for number, row in rows:
        if first is None:
            first = number
        part.append(row)
        if len(part) >= size:
            yield first, number, part
            part, first = [], None
    if part:
        yield first or 0, number, part


class _OutputWriter:
    """Writes result rows to JSONL or Parquet (``io.note_rows.PARQUET_COLUMNS``) in order."""

    def __init__(self, handle: Any, parquet: bool):
        self.handle, self.parquet = handle, parquet
        self.writer: Any = None  # a pyarrow ParquetWriter once the first Parquet batch is written
        self.model_version: str | None = None

    def write(self, rows: list[Row]) -> None:
        if not rows:
            return
        if self.model_version is None:
            self.model_version = rows[0].get("model_version")
        if not self.parquet:
            for row in rows:
                self.handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([parquet_record(r) for r in rows], schema=parquet_schema())
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.handle, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------- pre-annotation
_PIPELINES: dict[tuple, Any] = {}


def get_pipeline(entity_model: str | None = None, assertion_model: str | None = None, rules_only: bool = False) -> Any:
    """The pipeline for these options, built once per process (cached) and reused."""
    key = (entity_model, assertion_model, rules_only)
    if key not in _PIPELINES:
        from clinical_nlp.pipeline import build_pipeline

        _PIPELINES[key] = build_pipeline(
            entity_model=Path(entity_model) if entity_model else None,
            assertion_model=Path(assertion_model) if assertion_model else None,
            rules_only=rules_only,
        )
    return _PIPELINES[key]


def output_row(doc: Any, model_version: str) -> Row:
    """The contract row: ``id``, ``text``, ``spans`` (SPAN_FIELDS + extra attributes), ``model_version``, metadata."""
    spans = []
    for s in doc.spans:
        d = s.to_dict()
        for k, v in _SPAN_DEFAULTS.items():
            d.setdefault(k, v)
        spans.append(d)
    row: Row = {"id": doc.note.id, "text": doc.note.text, "spans": spans, "model_version": model_version}
    if doc.relations:
        row["relations"] = [dict(r) for r in doc.relations]
    for k, v in doc.note.metadata.items():
        if k not in row and k not in ("spans", "relations"):
            row[k] = v
    return row


@dataclass(frozen=True)
class PreannotateFn:
    """Picklable partition function: rows in, contract rows out (pipeline cached per worker process)."""

    entity_model: str | None = None
    assertion_model: str | None = None
    rules_only: bool = False
    batch_size: int = 32
    min_score: float = 0.0
    labels: tuple[str, ...] = ()
    relation_model: str | None = None

    def __call__(self, rows: list[Row]) -> list[Row]:
        from dataclasses import replace

        from clinical_nlp.config import load_label_schema
        from clinical_nlp.pipeline import pipeline_version, preannotate

        nlp = get_pipeline(self.entity_model, self.assertion_model, self.rules_only)
        version = pipeline_version(nlp)
        schema = load_label_schema()
        bars = {lab.name: max(self.min_score, lab.min_score) for lab in schema.labels}
        notes = [row_to_note(r, allow_empty=True) for r in rows]  # an empty note gets no spans
        out = []
        for d in preannotate(notes, nlp, batch_size=self.batch_size):
            kept = tuple(
                s for s in d.spans
                if (not self.labels or s.label in self.labels)
                and (s.score is None or s.score >= bars.get(s.label, self.min_score))
            )  # fmt: skip
            d = replace(d, spans=kept)
            if self.relation_model:
                from clinical_nlp.pipeline.relations import predict_relations

                d = predict_relations(d, self.relation_model, schema)
            out.append(output_row(d, version))
        return out


# ---------------------------------------------------------------- runner
def _client(workers: int | None, scheduler: str | None) -> tuple[Any, Any]:
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise ClinicalNLPError(f"cannot reach the Dask scheduler {scheduler!r}: {exc}") from None
    cluster = LocalCluster(
        n_workers=int(workers or 1), threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    )
    return Client(cluster), cluster


def run_partitioned(
    input: Path | str,
    output: Path | str,
    fn: PartitionFn,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    partition_size: int = 64,
    max_in_flight: int | None = None,
    retries: int = 2,
    progress: bool = True,
) -> ScaleStats:
    """Apply ``fn`` to every partition of ``input`` and write its rows to ``output`` in input order.

    ``workers=None`` and ``scheduler=None``: in-process (no cluster) with a
    progress bar. ``workers=N``: a Dask ``LocalCluster`` of N single-thread
    worker processes. ``scheduler="tcp://host:port"``: an existing cluster.
    Output is JSONL, or Parquet when ``output`` ends in ``.parquet``.
    """
    from tqdm import tqdm

    if partition_size < 1:
        raise ClinicalNLPError(f"partition size must be >= 1, not {partition_size}")
    input, output = Path(input), Path(output)
    if input.resolve() == output.resolve():
        raise ClinicalNLPError(f"{output}: output would overwrite the input")
    stats = ScaleStats(output=str(output))
    bar = tqdm(desc="pre-annotating", unit="note", disable=not progress)
    parts = _partitions(iter_input_rows(input), partition_size)
    try:
        with atomic_writer(output, "wb") as handle:
            out = _OutputWriter(handle, is_parquet(output))
            try:
                if workers is None and scheduler is None:
                    stats.workers = 0
                    for index, (_, _, rows) in enumerate(parts):
                        result = fn(rows)
                        _check(result, rows, index)
                        out.write(result)
                        _mark(stats, len(result))
                        stats.partitions += 1
                        stats.notes += len(result)
                        bar.update(len(result))
                else:
                    _run_dask(parts, fn, out, stats, bar, workers, scheduler, max_in_flight, retries)
            finally:
                out.close()
                stats.model_version = out.model_version
            if stats.notes == 0:  # inside the writer: no output file is left
                raise InputFormatError("no notes in input (empty file)", source=str(input))
    finally:
        bar.close()
    return stats


def _mark(stats: ScaleStats, n: int) -> None:
    import time

    now = time.perf_counter()
    if stats.first_written_at is None:
        stats.first_written_at, stats.first_partition_notes = now, n
    stats.last_written_at = now


def _check(result: list[Row], rows: list[Row], index: int) -> None:
    got = [str(r.get("id")) for r in result]
    want = [str(r.get("id")) for r in rows]
    if got != want:
        raise PartitionError(f"partition {index}: output ids do not match the input ids (exactly-once violated)")


def _run_dask(
    parts: Iterator[tuple[int, int, list[Row]]],
    fn: PartitionFn,
    out: _OutputWriter,
    stats: ScaleStats,
    bar: Any,
    workers: int | None,
    scheduler: str | None,
    max_in_flight: int | None,
    retries: int,
) -> None:
    from dask.distributed import wait

    client, cluster = _client(workers, scheduler)
    try:
        n_workers = len(client.scheduler_info().get("workers", {})) or int(workers or 1)
        stats.workers = n_workers
        limit = max_in_flight or 2 * n_workers + 1
        fn_future = client.scatter(fn, broadcast=True, hash=False)
        pending: dict[Any, tuple[int, int, int, list[Row], int]] = {}  # future -> (index, first, last, rows, attempt)
        done: dict[int, list[Row]] = {}
        next_write = 0
        index = 0
        exhausted = False

        def submit(idx: int, first: int, last: int, rows: list[Row], attempt: int) -> None:
            fut = client.submit(_apply, fn_future, rows, pure=False, key=f"partition-{idx}-{attempt}-{os.getpid()}")
            pending[fut] = (idx, first, last, rows, attempt)

        while True:
            while not exhausted and len(pending) + len(done) < limit:
                try:
                    first, last, rows = next(parts)
                except StopIteration:
                    exhausted = True
                    break
                submit(index, first, last, rows, 0)
                index += 1
            if not pending:
                break
            finished, _ = wait(list(pending), return_when="FIRST_COMPLETED")
            for fut in finished:
                idx, first, last, rows, attempt = pending.pop(fut)
                if fut.status == "error":
                    exc = fut.exception()
                    if isinstance(exc, InputFormatError) or attempt >= retries:
                        if isinstance(exc, InputFormatError):
                            raise exc
                        raise PartitionError(
                            f"partition {idx} (input rows {first}-{last}) failed after "
                            f"{attempt + 1} attempt(s): {type(exc).__name__}: {exc}"
                        )
                    stats.retries += 1
                    stats.retried_partitions[idx] = attempt + 1
                    submit(idx, first, last, rows, attempt + 1)
                    continue
                result = fut.result()
                _check(result, rows, idx)
                done[idx] = result
            while next_write in done:
                result = done.pop(next_write)
                out.write(result)
                _mark(stats, len(result))
                stats.partitions += 1
                stats.notes += len(result)
                bar.update(len(result))
                next_write += 1
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _apply(fn: PartitionFn, rows: list[Row]) -> list[Row]:
    return fn(rows)


def preannotate_file(
    input: Path | str,
    output: Path | str,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    model: Path | str | None = None,
    assertion_model: Path | str | None = None,
    rules_only: bool = False,
    partition_size: int = 64,
    batch_size: int = 32,
    retries: int = 2,
    progress: bool = True,
    min_score: float = 0.0,
    labels: Sequence[str] = (),
    use_default_model: bool = True,
    relation_model: Path | str | None = None,
) -> ScaleStats:
    """Pre-annotate a JSONL/Parquet corpus into JSONL/Parquet (one row per note, input order).

    Rows: ``id``, ``text``, ``spans`` (start, end, label, text, negation,
    temporality, experiencer, score, source …), ``model_version`` and the
    input's metadata keys. See :func:`run_partitioned` for ``workers``/``scheduler``. Suggestion
    controls: only ``labels`` (all when empty), and no span scored below ``min_score`` or its label's
    ``min_score`` in the label schema. With no ``model``, the entity model shipped in the package
    is used (``use_default_model=False``: rules only). With ``relation_model`` (a ``train relations``
    directory) each row also gets span ``id``s and ``relations`` (type, arg1, arg2, score) between its
    spans, those the label schema allows.
    """
    from clinical_nlp.config import load_label_schema
    from clinical_nlp.models.default_entities import default_entity_model_dir

    unknown = sorted(set(labels) - set(load_label_schema().label_names))
    if unknown:
        raise ClinicalNLPError(f"--labels: {unknown} not in the label schema")
    if model is not None and not Path(model).is_dir():
        raise ClinicalNLPError(f"{model}: entity model directory not found")
    if model is None and use_default_model:
        model = default_entity_model_dir()
    if relation_model is not None:
        from clinical_nlp.models.relations import load_relation_model

        load_relation_model(relation_model)  # a missing or unreadable model fails here, before any work
        if not load_label_schema().relations:
            raise ClinicalNLPError("--relations: the label schema has no relation types")
    fn = PreannotateFn(
        str(Path(model).resolve()) if model else None,
        str(Path(assertion_model).resolve()) if assertion_model else None,
        rules_only,
        batch_size,
        min_score,
        tuple(labels),
        str(Path(relation_model).resolve()) if relation_model else None,
    )
    stats = run_partitioned(
        input,
        output,
        fn,
        workers=workers,
        scheduler=scheduler,
        partition_size=partition_size,
        retries=retries,
        progress=progress,
    )
    return stats


def stats_summary(stats: ScaleStats) -> Mapping[str, Any]:
    """A JSON-able summary of a run."""
    return {
        "notes": stats.notes,
        "partitions": stats.partitions,
        "retries": stats.retries,
        "retried_partitions": stats.retried_partitions,
        "workers": stats.workers,
        "output": stats.output,
        "model_version": stats.model_version,
    }
