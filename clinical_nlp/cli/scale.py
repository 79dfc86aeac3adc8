"""Scale-out and export commands: ``preannotate`` and ``export``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _relation_model(given: Path | None) -> Path | None:
    """``--relations``: a directory, or ``default`` for the model shipped with the package."""
    from clinical_nlp.models.relations import resolve_relation_model_dir

    return None if given is None else resolve_relation_model_dir(given, "--relations")


def register(app: typer.Typer) -> None:
    @app.command("preannotate")
    def preannotate_cmd(
        input: Path = typer.Option(
            ...,
            "--input",
            "-i",
            help="Notes: JSONL, Parquet or CSV with id, text and metadata (other CSV columns: metadata).",
        ),
        output: Path = typer.Option(..., "--output", "-o", help="Output JSONL (or .parquet, spans as JSON)."),
        workers: int | None = typer.Option(
            None, "--workers", "-w", min=1, help="Run on a Dask LocalCluster of N worker processes."
        ),
        scheduler: str | None = typer.Option(None, "--scheduler", help="Existing Dask scheduler, tcp://host:port."),
        model: Path | None = typer.Option(
            None, "--model", help="Entity model dir from `clinical-nlp train entities` (default: the shipped model)."
        ),
        no_model: bool = typer.Option(False, "--no-model", help="Rules only: no learned entity model."),
        relations: Path | None = typer.Option(
            None,
            "--relations",
            help="Relation model dir from `clinical-nlp train relations`, or 'default' (the shipped one): "
            "rows get span ids and relations.",
        ),
        assertion_model: Path | None = typer.Option(None, "--assertion-model", help="Assertion model dir/JSON."),
        rules_only: bool = typer.Option(False, "--rules-only", help="ConText rules decide the attributes."),
        partition_size: int = typer.Option(64, help="Notes per partition (memory is bounded by a few partitions)."),
        retries: int = typer.Option(2, help="Resubmissions of a failed partition before the run fails."),
        min_score: float = typer.Option(0.0, "--min-score", min=0.0, max=1.0, help="Drop suggestions scored below."),
        labels: str = typer.Option("", "--labels", help="Comma-separated labels to suggest (default: all)."),
        preview: int = typer.Option(0, "--preview", min=0, help="Also write an HTML preview of N sampled notes."),
        preview_output: Path | None = typer.Option(
            None, "--preview-output", help="Preview page path (default: OUTPUT with .preview.html)."
        ),
    ) -> None:
        """Pre-annotate a corpus, in-process or on Dask, one output row per input note in input order.

        Output rows: id, text, spans (start, end, label, text, negation, temporality, experiencer,
        score, source), model_version and the input's metadata keys. Written atomically: on any
        error no output file is left.
        """
        from clinical_nlp.io.paths import refuse_clashing_paths, refuse_table_suffix
        from clinical_nlp.scale import preannotate_file, stats_summary

        preview_page = preview_output or output.with_suffix(".preview.html")
        refuse_table_suffix({"--output": output}, allowed=(".parquet", ".pq"))
        refuse_clashing_paths(
            {"--input": input}, {"--output": output, "--preview-output": preview_page if preview else None}
        )

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
            min_score=min_score,
            labels=[lab.strip() for lab in labels.split(",") if lab.strip()],
            use_default_model=not no_model,
            relation_model=_relation_model(relations),
        )
        typer.echo(json.dumps(stats_summary(stats)))
        if preview:
            from clinical_nlp.pipeline.preview import write_preview

            page = write_preview(output, preview_page, n=preview)
            typer.echo(f"preview of {preview} note(s): {page}")

    @app.command("export")
    def export_cmd(
        format: str = typer.Option(
            ..., "--format", "-f", help="jsonl, docbin, conll, brat, hf (datasets/Arrow) or parquet."
        ),
        output: Path = typer.Option(..., "--output", "-o", help="New folder for the data files and manifest.json."),
        project_dir: Path | None = typer.Option(
            None, "--project-dir", help="Export the gold annotations of this project."
        ),
        input: Path | None = typer.Option(
            None, "--input", "-i", help="Export a gold file instead of the store (under the project's gates)."
        ),
        dev_fraction: float = typer.Option(0.2, help="Share of patients in the dev split (0: train only)."),
        seed: int = typer.Option(13, help="Split seed."),
        actor: str | None = typer.Option(
            None, help="Who runs this (audit; default $CLINICAL_NLP_ACTOR, else OS user)."
        ),
        override: str | None = typer.Option(
            None, help="Export despite open adjudications or QA reviews; the reason is kept in the audit log."
        ),
        unknown_labels: str = typer.Option(
            "refuse",
            help="--input spans whose label the project's schema lacks: 'refuse' the file, 'drop' them "
            "(and their links) or 'keep' them (a public corpus with its own labels); the manifest counts them.",
        ),
    ) -> None:
        """Export a training corpus (train/dev split by patient) with manifest.json.

        One document per note (adjudicated > consensus > imported > single annotator). The manifest
        has counts per label, guideline and model versions, sha256 of every file, split sizes, what
        the format dropped, the notes excluded and the audit head hash. Every export, --input too,
        runs in a project: it is refused while its notes await adjudication or QA review, the audit
        trail is verified first, and the export is recorded in it.
        """
        from clinical_nlp.config import current_actor
        from clinical_nlp.export import export_from_file, export_from_store
        from clinical_nlp.project import resolve_project

        actor = current_actor(actor)

        project = resolve_project(project_dir)
        if input is not None:
            manifest = export_from_file(
                input,
                output,
                format,
                project=project,
                actor=actor,
                override=override,
                unknown_labels=unknown_labels,
                dev_fraction=dev_fraction,
                seed=seed,
            )
        else:
            manifest = export_from_store(
                project, output, format, actor=actor, dev_fraction=dev_fraction, seed=seed, override=override
            )
        typer.echo(json.dumps({k: manifest[k] for k in ("format", "documents", "spans", "splits", "content_hash")}))
        from clinical_nlp.export_check import summary

        if lost := summary(manifest["read_back"]):
            typer.echo(
                f"warning: read back, the {manifest['format']} files hold less than the gold: {lost} "
                "(manifest.json, read_back)",
                err=True,
            )
