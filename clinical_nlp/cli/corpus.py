"""Corpus commands: ``convert`` between formats and ``ingest`` notes into the project store."""

from __future__ import annotations

from pathlib import Path

import typer

from clinical_nlp.io.registry import FORMATS, WRITABLE


def register(app: typer.Typer) -> None:
    @app.command("convert")
    def convert_cmd(
        input: Path = typer.Option(..., "--input", "-i", help="Corpus file or directory to read."),
        output: Path = typer.Option(..., "--output", "-o", help="File (or directory for BRAT) to write."),
        from_fmt: str | None = typer.Option(
            None, "--from", help=f"Input format ({', '.join(FORMATS)}); default: from the path."
        ),
        to_fmt: str | None = typer.Option(
            None,
            "--to",
            help=f"Output format ({', '.join(WRITABLE)}); default: from the extension "
            "(.jsonl, .spacy, .conll/.bio, .parquet/.csv; no extension = BRAT folder).",
        ),
        overlap: str = typer.Option(
            "error",
            help="CoNLL/BIO only: 'error' refuses overlapping spans, 'longest' keeps the longest "
            "of each overlapping cluster.",
        ),
        allow_empty: bool = typer.Option(False, help="Accept notes whose text is empty."),
    ) -> None:
        """Convert a corpus between formats, verifying every span's offsets.

        Input: JSONL, Doccano JSONL, BRAT folder, CoNLL/BIO, spaCy DocBin, Parquet/CSV span
        table, or FHIR R4 (DocumentReference/Bundle JSON, Bulk NDJSON). Output: any of these
        but FHIR, written atomically. JSONL, DocBin and the span table are lossless;
        BRAT drops nothing but span scores/sources; Doccano and CoNLL are lossy (see
        clinical_nlp/io/*.py). Exit code 2 with the file and line on bad input.
        """
        from clinical_nlp.io.paths import refuse_clashing_paths
        from clinical_nlp.io.registry import convert_corpus

        refuse_clashing_paths({"--input": input}, {"--output": output})

        n_docs, n_spans, fmt_in, fmt_out = convert_corpus(
            input, output, from_fmt=from_fmt, to_fmt=to_fmt, overlap=overlap, allow_empty=allow_empty
        )
        typer.echo(f"converted {n_docs} documents ({n_spans} spans) from {fmt_in} to {fmt_out}: {output}")

    @app.command("ingest")
    def ingest_cmd(
        input: Path = typer.Option(..., "--input", "-i", help="Corpus file or directory (any readable format)."),
        fmt: str | None = typer.Option(
            None, "--format", "-f", help=f"Input format ({', '.join(FORMATS)}); default: from the path."
        ),
        project_dir: Path | None = typer.Option(
            None, "--project-dir", help="Project folder (default: found from the working directory)."
        ),
        deidentified: bool = typer.Option(
            False,
            "--deidentified",
            help="Attest that these texts hold no PHI (recorded with their hashes and your name, audited; "
            "allowed to be pushed to Doccano). Otherwise run 'clinical-nlp deid --project-dir'.",
        ),
        annotator: str | None = typer.Option(
            None, help="Also store the corpus spans as this annotator's annotations (default: notes only)."
        ),
        kind: str = typer.Option("gold", help="Annotation kind for --annotator: gold, human or pre."),
        actor: str | None = typer.Option(
            None, help="Who runs this (audit; default $CLINICAL_NLP_ACTOR, else OS user)."
        ),
        allow_empty: bool = typer.Option(False, help="Accept notes whose text is empty."),
        unknown_labels: str = typer.Option(
            "refuse", help="Spans whose label is not in the label schema: 'refuse' the file or 'drop' them."
        ),
    ) -> None:
        """Load notes into the project store (documents table), with an audit entry.

        Reads any corpus format (see 'convert --help'), verifies every span, then inserts or
        updates the notes (id, text, metadata such as patient/date/note_type) in the store.
        Output: a summary line; the store and an 'ingest' audit-log entry are updated.
        """
        from clinical_nlp.config import current_actor
        from clinical_nlp.project import resolve_project
        from clinical_nlp.services.ingest import ingest_corpus
        from clinical_nlp.store import shown_url

        project = resolve_project(project_dir)
        summary = ingest_corpus(
            input,
            project,
            fmt=fmt,
            deidentified=deidentified,
            annotator=annotator,
            kind=kind,
            actor=current_actor(actor),
            allow_empty=allow_empty,
            progress=True,
            unknown_labels=unknown_labels,
        )
        typer.echo(
            f"ingested {summary['notes']} notes ({summary['annotations']} annotations) "
            f"into {shown_url(project.store_url)}"
            + (" [de-identified]" if deidentified else "")
            + (
                f"; dropped {summary['dropped_spans']} spans of labels outside the schema"
                if summary["dropped_spans"]
                else ""
            )
            + (
                f"; dropped {summary['dropped_links']} links the schema does not allow"
                if summary.get("dropped_links")
                else ""
            )
        )
