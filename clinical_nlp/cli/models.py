"""Model commands: ``train entities`` and ``models list`` (the model registry)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import typer


def _labels(value: str | None) -> tuple[str, ...]:
    from clinical_nlp.models.entities import DEFAULT_LABELS

    if not value:
        return DEFAULT_LABELS
    return tuple(x.strip() for x in value.split(",") if x.strip())


#: the kind ``clinical-nlp train entities`` trains when ``--kind`` is not given (see RESULTS.md)
DEFAULT_KIND = "ensemble"


def _check_training_input(
    train: Path, train_docs: list, partial_docs: list, dev: Path | None, dev_docs: list | None, labels: Any
) -> None:
    """Refuse training data without a span to learn (of ``labels``) and a dev set made of training notes;
    warn when some dev notes are training notes (their dev F1 measures memory)."""
    from clinical_nlp.errors import InputFormatError

    wanted = set(labels or ())
    if not any(s for d in [*train_docs, *partial_docs] for s in d.spans if not wanted or s.label in wanted):
        raise InputFormatError(
            "no span to learn"
            + (f" of the labels {sorted(wanted)}" if wanted else "")
            + ": the model would tag nothing",
            source=str(train),
        )
    if dev_docs and dev is not None:
        from clinical_nlp.cli.held_out import check_dev_against_train

        check_dev_against_train(
            [(d.id, d.text) for d in dev_docs], [d.text for d in train_docs], what="note",
            why="early stopping and dev F1 would measure memory", source=dev,
        )  # fmt: skip


def register(app: typer.Typer) -> None:
    train_app = typer.Typer(help="Train learned models from gold-annotated JSONL.", no_args_is_help=True)
    models_app = typer.Typer(help="The model registry: trained model versions and their metrics.", no_args_is_help=True)
    app.add_typer(train_app, name="train")
    app.add_typer(models_app, name="models")
    from clinical_nlp.cli import relations

    relations.register(app, train_app)  # train relations, relations

    @train_app.command("entities")
    def train_entities_cmd(
        train: Path = typer.Option(..., "--train", help="Span-annotated JSONL to train on (id, text, spans)."),
        dev: Path | None = typer.Option(
            None, "--dev", help="Fixed dev JSONL: early stopping and the metrics stored with the model."
        ),
        output: Path = typer.Option(
            ..., "--output", "-o", help="Model directory to write (replaced if it holds a model)."
        ),
        kind: str = typer.Option(
            DEFAULT_KIND,
            help="'spacy' (fast CNN BIO tagger), 'transformer' "
            "(MiniLM token classifier) or 'ensemble' (both, probabilities averaged: the most "
            "accurate, trains both).",
        ),
        labels: str | None = typer.Option(
            None,
            help="Comma-separated labels (default: the label schema's pre-annotated labels, "
            "pre_annotate: true); other labels in the data are ignored.",
        ),
        epochs: int | None = typer.Option(
            None,
            help="Maximum epochs (default: 30 with --dev, early stopping keeps the best; 10 without --dev; "
            "8 for the transformer).",
        ),
        transformer_epochs: int = typer.Option(8, help="Ensemble only: the transformer member's epochs."),
        tokenizer: str = typer.Option(
            "default",
            help="spaCy tokenizer: 'default' (spaCy English rules) or "
            "'fine' (letter/digit runs and single punctuation).",
        ),
        static_vectors: bool = typer.Option(
            True,
            "--static-vectors/--no-static-vectors",
            help="spaCy: static word vectors from the packaged MiniLM's word-piece embeddings.",
        ),
        vector_dims: int = typer.Option(
            0, help="spaCy: principal components kept of the static vectors (0: all 384; 128 for a small model)."
        ),
        partial: Path | None = typer.Option(
            None,
            "--partial",
            help="spaCy kind: JSONL of partially labelled notes (id, text, spans): only the spans' tokens "
            "are taught (B-/I- of a model label; label O: outside every entity; any other label: 'some "
            "entity here'), every other token is unknown.",
        ),
        width: int = typer.Option(128, help="spaCy: CNN tok2vec width."),
        depth: int = typer.Option(4, help="spaCy: CNN tok2vec depth (layers; each sees one more token each side)."),
        seed: int = typer.Option(0, help="Random seed."),
        dropout: float | None = typer.Option(None, help="Training dropout (default: 0.2 spacy, 0.1 transformer)."),
        patience: int = typer.Option(4, help="Early stopping: epochs without dev improvement (0: off)."),
        batch_size: int | None = typer.Option(None, help="Notes (spacy) or windows (transformer) per update."),
        learning_rate: float | None = typer.Option(None, help="Learning rate (default: kind-specific)."),
        base_model: Path | None = typer.Option(
            None,
            "--base-model",
            help="Warm start: a model directory of the same kind (or, for the transformer, "
            "a local Hugging Face directory; default: packaged all-MiniLM-L6-v2).",
        ),
        parent_version: str | None = typer.Option(None, help="Parent version (default: the base model's)."),
        project_dir: Path | None = typer.Option(
            None, "--project-dir", help="Record the version in this project's store and audit log."
        ),
        progress: bool = typer.Option(True, help="Show a progress bar."),
    ) -> None:
        """Train a span/NER model; write a versioned model directory with its metrics.

        Input: JSONL rows {id, text, spans: [{start, end, label, fragments?}]}. Empty texts are skipped.
        Discontinuous spans are learned as their outer bounds; of overlapping spans the longest is kept
        (ties: the label listed first). Output: OUTPUT/model.json (version, kind, labels, training-data
        hash, guideline version, parent version, config), OUTPUT/metrics.json (dev strict and overlap
        P/R/F1, micro and per label, per-epoch history) and the weights.
        """
        from clinical_nlp.io.jsonl import read_jsonl
        from clinical_nlp.models.entities import TrainConfig, train_entity_model
        from clinical_nlp.models.entities.config import ModelKind, TokenizerKind

        if kind not in ("spacy", "transformer", "ensemble"):
            raise typer.BadParameter("use 'spacy', 'transformer' or 'ensemble'", param_hint="--kind")
        if tokenizer not in ("default", "fine"):
            raise typer.BadParameter("use 'default' or 'fine'", param_hint="--tokenizer")
        defaults: dict[str, Any] = {
            "spacy": dict(epochs=30, dropout=0.2, batch_size=16),
            "ensemble": dict(epochs=30, dropout=0.2, batch_size=16),
            "transformer": dict(epochs=8, dropout=0.1, batch_size=16),
        }[kind]
        config = TrainConfig(
            kind=cast(ModelKind, kind),
            labels=_labels(labels),
            seed=seed,
            patience=patience,
            base_model=base_model,
            # without a dev set there is no early stopping: stop where dev runs peak on Chia (epoch 6-10)
            epochs=epochs or (defaults["epochs"] if dev is not None or kind == "transformer" else 10),
            dropout=defaults["dropout"] if dropout is None else dropout,
            batch_size=batch_size or defaults["batch_size"],
            learning_rate=learning_rate if learning_rate is not None or kind != "transformer" else 1e-4,
            tokenizer=cast(TokenizerKind, tokenizer),
            static_vectors=static_vectors,
            vector_dims=vector_dims,
            width=width,
            depth=depth,
            transformer_epochs=transformer_epochs,
        )
        train_docs = read_jsonl(train, allow_empty=True)
        dev_docs = read_jsonl(dev, allow_empty=True) if dev else None
        partial_docs = read_jsonl(partial, allow_empty=True) if partial else []
        _check_training_input(train, train_docs, partial_docs, dev, dev_docs, config.labels)
        store = None
        if project_dir is not None:
            from clinical_nlp.project import open_store, resolve_project

            store = open_store(resolve_project(project_dir))
        model = train_entity_model(
            train_docs,
            dev_docs,
            config,
            output,
            parent_version=parent_version,
            store=store,
            progress=progress,
            partial=partial_docs,
        )
        typer.echo(f"model {model.version} written to {output} ({model.metrics['train_seconds']:.1f}s)")
        if "dev" in model.metrics:
            dev_m = model.metrics["dev"]
            typer.echo(
                f"dev strict micro-F1 {dev_m['strict']['micro']['f1']:.3f}, "
                f"overlap micro-F1 {dev_m['overlap']['micro']['f1']:.3f}"
            )
            for label, prf in dev_m["strict"]["per_label"].items():
                typer.echo(f"  {label:<12} strict F1 {prf['f1']:.3f}")

    @models_app.command("list")
    def list_cmd(
        project_dir: Path | None = typer.Option(None, "--project-dir", help="Project folder (default: cwd/implicit)."),
        models_dir: Path | None = typer.Option(
            None, help="Folder to scan for model directories (default: the project's models/)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List model versions: directories under the project's models/ and versions recorded in its store.

        Output: version, kind, parent, dev strict micro-F1, guideline version and path, newest first.
        """
        from clinical_nlp.models.entities import list_models
        from clinical_nlp.project import open_store, resolve_project

        project = resolve_project(project_dir)
        folder = models_dir or project.path(project.config.models_dir)
        rows = list_models(folder, open_store(project))
        if as_json:
            typer.echo(json.dumps(rows, indent=2, default=str))
            return
        if not rows:
            typer.echo(f"no model versions in {folder} or the project store")
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("version", "kind", "parent", "dev strict F1", "guideline", "path")
        for r in rows:
            f1 = r.get("dev_strict_f1")
            table.add_row(
                str(r["version"]),
                str(r.get("kind")),
                str(r.get("parent") or "-"),
                "-" if f1 is None else f"{f1:.3f}",
                str(r.get("guideline_version") or "-"),
                str(r.get("path") or "-"),
            )
        Console().print(table)
