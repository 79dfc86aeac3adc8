"""Scale-out and export commands: ``preannotate`` and ``export``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("preannotate")
    def preannotate_cmd(
        input: Path = typer.Option(..., "--input", "-i", help="Notes: JSONL or Parquet with id, text and metadata."),
        output: Path = typer.Option(..., "--output", "-o", help="Output JSONL (or .parquet, spans as JSON)."),
        workers: int | None = typer.Option(
            None, "--workers", "-w", min=1, help="Run on a Dask LocalCluster of N worker processes."
        ),
        scheduler: str | None = typer.Option(None, "--scheduler", help="Existing Dask scheduler, tcp://host:port."),
        model: Path | None = typer.Option(None, "--model", help="Entity model dir from `clinical-nlp train entities`."),
        assertion_model: Path | None = typer.Option(None, "--assertion-model", help="Assertion model dir/JSON."),
        rules_only: bool = typer.Option(False, "--rules-only", help="ConText rules decide the attributes."),
        partition_size: int = typer.Option(64, help="Notes per partition (memory is bounded by a few partitions)."),
        retries: int = typer.Option(2, help="Resubmissions of a failed partition before the run fails."),
    ) -> None:
        """Pre-annotate a corpus, in-process or on Dask, one output row per input note in input order.

        Output rows: id, text, spans (start, end, label, text, negation, temporality, experiencer,
        score, source), model_version and the input's metadata keys. Written atomically: on any
        error no output file is left.
        """
        from clinical_nlp.scale import preannotate_file, stats_summary

        stats = preannotate_file(
            input,
            output,
            workers=workers,
            scheduler=scheduler,
            model=model,
            assertion_model=assertion_model,
            rules_only=rules_only,
            partition_size=partition_size,
            retries=retries,
        )
        typer.echo(json.dumps(stats_summary(stats)))

    @app.command("export")
    def export_cmd(
        format: str = typer.Option(
            ..., "--format", "-f", help="jsonl, docbin, conll, brat, hf (datasets/Arrow) or parquet."
        ),
        output: Path = typer.Option(..., "--output", "-o", help="New folder for the data files and manifest.json."),
        project_dir: Path | None = typer.Option(
            None, "--project-dir", help="Export the gold annotations of this project."
        ),
        input: Path | None = typer.Option(None, "--input", "-i", help="Export a gold JSONL file instead of the store."),
        dev_fraction: float = typer.Option(0.2, help="Share of patients in the dev split (0: train only)."),
        seed: int = typer.Option(13, help="Split seed."),
        actor: str = typer.Option("cli", help="Who exports (audit log)."),
    ) -> None:
        """Export a training corpus (train/dev split by patient) with manifest.json.

        The manifest has counts per label, guideline and model versions, sha256 of every file,
        split sizes and what the format dropped. Store exports pass the QA gate first and are
        recorded in the audit log.
        """
        from clinical_nlp.export import export_from_file, export_from_store

        if input is not None:
            manifest = export_from_file(input, output, format, dev_fraction=dev_fraction, seed=seed)
        else:
            from clinical_nlp.project import resolve_project

            manifest = export_from_store(
                resolve_project(project_dir), output, format, actor=actor, dev_fraction=dev_fraction, seed=seed
            )
        typer.echo(json.dumps({k: manifest[k] for k in ("format", "documents", "spans", "splits", "content_hash")}))
