"""Relation commands: ``train relations`` and ``relations`` (predict links between given spans)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.relation_rows import read_relation_rows


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    @train_app.command("relations")
    def train_relations_cmd(
        train: Path = typer.Option(..., "--train", help="JSONL with spans (with ids) and relations (Chia form)."),
        dev: Path = typer.Option(..., "--dev", help="Development JSONL: chooses C and the modifier threshold."),
        output: Path = typer.Option(..., "--output", "-o", help="Model directory to write."),
        minilm: bool = typer.Option(
            True, "--minilm/--no-minilm", help="Also fine-tune the MiniLM pair scorer (blend weight chosen on --dev)."
        ),
        minilm_epochs: int = typer.Option(5, "--minilm-epochs", min=1, help="MiniLM fine-tuning epochs."),
    ) -> None:
        """Train the relation classifier on gold entities and relations; print the dev micro-F1."""
        from tqdm import tqdm

        from clinical_nlp.models.relations import C_GRID, train_relations

        train_rows = read_relation_rows(train, with_relations=True)
        dev_rows = read_relation_rows(dev, with_relations=True)
        if not any(r.get("relations") for r in train_rows):
            raise InputFormatError("no relation to learn: the training rows hold no 'relations'", source=str(train))
        from clinical_nlp.cli.held_out import check_dev_against_train

        check_dev_against_train(
            [(r["id"], r["text"]) for r in dev_rows], [r["text"] for r in train_rows], what="row",
            why="C and thresholds would be chosen on memory", source=dev,
        )  # fmt: skip
        config = None
        if minilm:
            from clinical_nlp.models.relations_minilm import PairTrainConfig

            config = PairTrainConfig(epochs=minilm_epochs)
        with tqdm(total=len(C_GRID), desc="fit", unit="C", disable=None) as bar:
            fine = tqdm(total=None, desc="MiniLM fine-tuning", unit="line", disable=None if minilm else True)

            def step(done: int, total: int) -> None:
                if fine.total != total:
                    fine.total = total
                fine.update(done)

            with fine:
                model, scores = train_relations(
                    train_rows, dev_rows, progress=bar.update, minilm=config, minilm_progress=step
                )
        model.meta["data"] = {"train": train.name, "dev": dev.name}
        path = model.save(output)
        typer.echo(json.dumps({"model": str(path), "C": model.meta["C"], "dev_all": scores["all"],
                               "dev_modifiers": scores["modifiers"]}, indent=2))  # fmt: skip

    @app.command("relations")
    def relations_cmd(
        model: Path | None = typer.Option(
            None, "--model", help="Directory written by 'train relations' (default: the shipped model)."
        ),
        input: Path = typer.Option(..., "--input", "-i", help="JSONL rows: id, text, spans (with ids)."),
        output: Path = typer.Option(..., "--output", "-o", help="JSONL rows: id, relations (type, arg1, arg2, score)."),
    ) -> None:
        """Predict relations between the given spans of each row (one output row per input row, in order)."""
        from clinical_nlp.io.jsonl import write_rows
        from clinical_nlp.io.paths import refuse_clashing_paths, refuse_table_suffix
        from clinical_nlp.models.relations import load_relation_model, resolve_relation_model_dir

        refuse_table_suffix({"--output": output})
        refuse_clashing_paths({"--input": input}, {"--output": output})
        mdl = load_relation_model(resolve_relation_model_dir(model, "--model"))
        rows = read_relation_rows(input)
        known = {label for pair in mdl.allowed for label in pair}
        unknown = sorted({str(s["label"]) for r in rows for s in r.get("spans") or []} - known)
        if unknown:
            typer.echo(f"warning: the model was not trained on the label(s) {', '.join(unknown)}: "
                       "their spans get no relations", err=True)  # fmt: skip
        preds = mdl.predict(rows)
        n = write_rows(output, [{"id": r["id"], "relations": p} for r, p in zip(rows, preds, strict=True)])
        typer.echo(f"{sum(map(len, preds))} relation(s) in {n} row(s) -> {output}")
