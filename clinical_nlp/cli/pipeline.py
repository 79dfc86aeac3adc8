"""Pipeline commands: ``assertions``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from clinical_nlp.errors import InputFormatError


def run_assertions(
    input_path: Path,
    output_path: Path,
    *,
    model: Path | None = None,
    rules_only: bool = False,
    progress: bool = False,
    details: bool = False,
    mode: str | None = None,
) -> int:
    """Classify every concept row of ``input_path`` into ``output_path`` (atomic); returns the row count.

    Each input row needs ``id``, ``text``, ``start``, ``end`` (and optionally
    ``concept``, checked against the offsets). Each output row has ``id``,
    ``negation``, ``temporality``, ``experiencer`` (plus ``score``/``source``
    with ``details``). ``mode``: rules, linear or accurate (default: the package's
    ``DEFAULT_MODE``). Any bad row raises an error naming file, line and id,
    and no output file is left behind.
    """
    from clinical_nlp.io.jsonl import iter_json_rows, write_rows
    from clinical_nlp.io.paths import refuse_clashing_paths, refuse_table_suffix
    from clinical_nlp.pipeline.assertion import ATTRIBUTES, iter_classified, resolve_mode

    resolve_mode(mode, rules_only)  # an unknown mode fails before any input is read
    refuse_table_suffix({"--output": output_path})
    refuse_clashing_paths({"--input": input_path}, {"--output": output_path})
    src = str(input_path)
    seen_line: dict[str, int] = {}

    def rows() -> Iterator[tuple[str, str, int, int, str | None]]:
        for number, row in iter_json_rows(input_path):
            if row.get("id") in (None, ""):
                raise InputFormatError("row has no 'id'", source=src, line=number)
            rid = str(row["id"])
            for key in ("text", "start", "end"):
                if key not in row:
                    raise InputFormatError(f"row {rid!r} has no {key!r}", source=src, line=number)
            if rid in seen_line:
                raise InputFormatError(
                    f"duplicate id {rid!r} (first on line {seen_line[rid]}): output rows are joined by id",
                    source=src, line=number,
                )  # fmt: skip
            seen_line[rid] = number
            concept = row.get("concept")
            yield rid, row["text"], row["start"], row["end"], concept if isinstance(concept, str) else None

    def out() -> Iterator[dict[str, Any]]:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(desc="assertions", unit="row", total=_count_rows(input_path))
        try:
            it = iter_classified(rows(), model=model, rules_only=rules_only, mode=mode)
            while True:
                try:
                    rid, res = next(it)
                except StopIteration:
                    return
                except InputFormatError as exc:
                    line = max(seen_line.values()) if seen_line else None
                    if exc.source is None:
                        raise InputFormatError(str(exc), source=src, line=line) from None
                    raise
                row = {"id": rid, **{a: res[a] for a in ATTRIBUTES}}
                if details:
                    row.update(score=res["score"], source=res["source"])
                if bar is not None:
                    bar.update(1)
                yield row
        finally:
            if bar is not None:
                bar.close()

    count = write_rows(output_path, out())
    if count == 0:
        output_path.unlink(missing_ok=True)
        raise InputFormatError("no rows to classify (empty input)", source=src)
    return count


def _count_rows(path: Path) -> int | None:
    """Non-blank lines of ``path`` (the progress bar's total), or None when it cannot be read."""
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


def register(app: typer.Typer) -> None:
    @app.command("assertions")
    def assertions_cmd(
        input: Path = typer.Option(
            ...,
            "--input",
            "-i",
            help="JSONL rows with id, text, start, end (the marked concept) and optionally concept (checked).",
        ),
        output: Path = typer.Option(
            ...,
            "--output",
            "-o",
            help="JSONL output: id, negation, temporality, experiencer per row (written atomically).",
        ),
        model: Path = typer.Option(
            None,
            "--model",
            help="Assertion model dir/JSON from "
            "scripts/train_assertion_model.py (default: the model shipped in the package).",
        ),
        rules_only: bool = typer.Option(False, "--rules-only", help="Use the ConText cue rules only (fastest)."),
        mode: str | None = typer.Option(
            None,
            "--mode",
            help="rules (cue rules only, = --rules-only), linear (rules + linear model) or accurate "
            "(+ the MiniLM model on the rows the linear model is unsure of). Default: accurate "
            "(linear where the MiniLM model cannot run).",
        ),
        details: bool = typer.Option(False, "--details", help="Also write score and source (provenance) per row."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ) -> None:
        """Classify negation (affirmed/negated/possible), temporality (recent/historical/hypothetical)
        and experiencer (patient/family/other) of the concept marked in each row.

        Input: JSONL, one concept per row ({"id", "text", "start", "end"[, "concept"]}).
        Output: JSONL with the same ids ({"id", "negation", "temporality", "experiencer"}).
        Bad rows (offsets outside the text or not on the concept, empty/huge text,
        non-UTF-8) stop with an error naming the line and id; no output is left behind.
        """
        n = run_assertions(
            input, output, model=model, rules_only=rules_only, progress=progress, details=details, mode=mode
        )
        typer.echo(f"classified {n} rows -> {output}", err=True)
