"""Active-learning commands: ``al simulate``, ``al strategies``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clinical_nlp.errors import ConfigError, InputFormatError


def _parse_config(pairs: list[str]) -> dict:
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--strategy-config expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def register(app: typer.Typer) -> None:
    al = typer.Typer(help="Active learning: query strategies and simulated annotation rounds.", no_args_is_help=True)

    @al.command("strategies")
    def strategies_cmd() -> None:
        """List the registered query strategies (versioned names) with a one-line description.

        A plain name (e.g. 'entropy') resolves to the latest version ('entropy.v1').
        """
        from clinical_nlp.active import _REGISTRY, list_strategies

        for name in list_strategies():
            doc = (_REGISTRY[name].__doc__ or "").strip().splitlines()[0]
            typer.echo(f"{name:22s} {doc}")

    @al.command("simulate")
    def simulate_cmd(
        pool: Path = typer.Option(..., "--pool", help="Gold-annotated JSONL pool the oracle labels from."),
        eval_path: Path = typer.Option(..., "--eval", help="Gold-annotated JSONL evaluation set."),
        strategy: str = typer.Option("random", help="Query strategy name (see 'al strategies')."),
        rounds: int = typer.Option(3, help="Query rounds after the seed round 0."),
        batch: int = typer.Option(10, help="Notes labelled per round (round 0: random seed batch)."),
        seed: int = typer.Option(0, help="Random seed (seed batch, ties, oracle errors, training)."),
        output: Path = typer.Option(..., "--output", help="Where to write the curve JSON."),
        labels: str | None = typer.Option(
            None, help="Comma-separated labels to learn and score (default: all labels in the pool)."
        ),
        epochs: int = typer.Option(
            10, help="Training epochs of the fast spaCy model each round (the maximum when --dev is given)."
        ),
        dev: Path | None = typer.Option(
            None, "--dev", help="Fixed gold JSONL dev set (kept out of the pool) for early stopping."
        ),
        warm_start: bool = typer.Option(
            False,
            "--warm-start/--from-scratch",
            help="Continue each round from the previous round's model "
            "(the first training may run 3x --epochs) instead of retraining from scratch.",
        ),
        skill: float = typer.Option(1.0, help="Simulated annotator skill in [0, 1]; 1.0 = gold exactly."),
        strategy_config: list[str] = typer.Option(
            [], "--strategy-config", help='Strategy option KEY=VALUE (JSON value), repeatable, e.g. aggregate="max".'
        ),
    ) -> None:
        """Run the active-learning loop in direct mode (no Doccano) with a simulated expert.

        Round 0 labels BATCH random notes (seeded); each later round queries BATCH notes with
        the strategy, pre-annotates them with the current model, lets the oracle correct them
        (edits counted), retrains the fast spaCy model (from scratch, or --warm-start) and evaluates it.

        Output: CURVE.json = {"strategy", "points": [{"round", "n_docs", "edits", "f1", ...}], ...}
        where f1 is strict micro span F1 on EVAL, n_docs and edits are cumulative.
        """
        from clinical_nlp.io.jsonl import read_jsonl
        from clinical_nlp.io.paths import refuse_clashing_paths
        from clinical_nlp.simulate import AnnotatorSkill, default_train_fn, simulate_active_learning, without_texts_of

        refuse_clashing_paths({"--pool": pool, "--eval": eval_path, "--dev": dev}, {"--output": output})
        pool_docs = read_jsonl(pool, allow_empty=True)
        eval_docs = read_jsonl(eval_path, allow_empty=True)
        dev_docs = [d for d in read_jsonl(dev, allow_empty=True) if d.text.strip()] if dev else None
        for name, docs in (("pool", pool_docs), ("dev", dev_docs or [])):
            if shared := len(docs) - len(without_texts_of(docs, eval_docs)):
                typer.echo(
                    f"warning: {shared} {name} note(s) have the text of an evaluation note and are left out "
                    f"(a model {'trained' if name == 'pool' else 'stopped early'} on them would be scored on them)",
                    err=True,
                )
        if dev_docs is not None:
            dev_docs = without_texts_of(dev_docs, eval_docs)
            if not dev_docs:
                raise InputFormatError(f"{dev}: every dev note is also in the evaluation set")
        label_list = [x.strip() for x in labels.split(",") if x.strip()] if labels else None
        chosen = sorted(set(label_list)) if label_list else sorted({s.label for d in pool_docs for s in d.spans})
        curve = simulate_active_learning(
            pool_docs,
            eval_docs,
            strategy,
            rounds=rounds,
            batch=batch,
            seed=seed,
            labels=label_list,
            skill=AnnotatorSkill.from_level(skill),
            strategy_config=_parse_config(strategy_config),
            train_fn=default_train_fn(chosen, epochs=epochs, dev=dev_docs, warm_start=warm_start) if chosen else None,
        )
        curve["pool"] = pool.name
        curve["eval"] = eval_path.name
        curve["epochs"] = epochs
        curve["warm_start"] = warm_start
        curve["dev"] = dev.name if dev else None
        output.parent.mkdir(parents=True, exist_ok=True)
        from clinical_nlp.io.jsonl import atomic_writer

        with atomic_writer(output) as handle:
            json.dump(curve, handle, indent=2)
        last = curve["points"][-1]
        typer.echo(
            f"{curve['strategy']}: {last['n_docs']} docs, {last['edits']} edits, F1 {last['f1']:.3f} -> {output}"
        )

    app.add_typer(al, name="al")
