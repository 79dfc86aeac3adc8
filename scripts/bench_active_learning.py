#!/usr/bin/env python
"""Learning-curve benchmark of the active-learning query strategies on Chia.

Pool = shared ``chia/train.jsonl`` minus a fixed dev slice of ``--dev-size``
notes (100, seeded; used only for early stopping), evaluation = shared
``chia/dev.jsonl``. For each strategy and seed the direct-mode loop
(:func:`clinical_nlp.simulate.simulate_active_learning`) labels ``--batch``
notes per round with a perfect simulated expert (or ``--skill``), retrains the
fast spaCy model (default ``TrainConfig``: BIO tagger, spaCy tokenizer, MiniLM
word-piece static vectors) and scores strict (exact) micro span F1 on the
evaluation set. Round 0 trains from scratch (up to ``--first-epochs``, early
stopping on the dev slice); later rounds continue from the previous model
(``--warm-start``, up to ``--epochs`` more passes, early stopping). The
full-pool ceiling is trained from scratch on the whole pool (up to
``--full-epochs``, patience ``--full-patience``). Cost is counted both in
documents and in simulated edits (pre-annotation of the current model vs gold,
``clinical_nlp.edits``), cumulative and per round.

Outputs (``--output`` folder): ``al_curves.json`` (all curves, the full-pool
F1 and a summary per strategy) and ``al_curves.png`` (F1 vs documents and F1
vs edits, mean over seeds with min-max band).

Default settings (about an hour on 2 quiet cores): strategies random and
entropy; 3 seeds; batch 60; 5 query rounds (seed batch + 5 = 360 notes, 39%
of the pool); the 8 main entity labels. Smoke run:
``--seeds 1 --rounds 1 --max-pool 120 --batch 30 --dev-size 20``.

Summary per strategy: mean F1 at the last round with at most 40% of the pool,
its ratio to the full-pool F1, the first n_docs reaching 95% of it (if any), and
edits relative to random at each round (``fewer_edits_than_random_after_round_0``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import Target, check_targets  # noqa: E402

from clinical_nlp.config import shared_corpora_dir  # noqa: E402
from clinical_nlp.io.jsonl import atomic_writer, read_jsonl  # noqa: E402
from clinical_nlp.simulate import (  # noqa: E402
    AnnotatorSkill,
    default_train_fn,
    full_pool_f1,
    simulate_active_learning,
)

MAIN_LABELS = "Condition,Drug,Procedure,Measurement,Observation,Temporal,Value,Negation"


def _load(args):
    """(pool, eval, dev): ``dev`` = ``--dev-size`` notes carved from the pool with a fixed seed
    (early stopping only; never queried, never scored)."""
    pool = read_jsonl(args.pool, allow_empty=True)
    pool = [d for d in pool if d.text.strip()]
    dev: list = []
    if args.dev_size:
        rng = np.random.default_rng(2024)
        take = set(rng.choice(len(pool), size=min(args.dev_size, len(pool) // 4), replace=False).tolist())
        dev = [d for i, d in enumerate(pool) if i in take]
        pool = [d for i, d in enumerate(pool) if i not in take]
    if args.max_pool:
        rng = np.random.default_rng(12345)
        pool = [pool[i] for i in sorted(rng.choice(len(pool), size=min(args.max_pool, len(pool)), replace=False))]
    ev = read_jsonl(args.eval, allow_empty=True)
    ev = [d for d in ev if d.text.strip()]
    return pool, ev, dev


def _model_config(args) -> dict:
    """The model's settings (``TrainConfig`` keys) used for every training in the run: the fast
    spaCy tagger, or with ``--kind transformer`` the packaged MiniLM token classifier."""
    if getattr(args, "kind", "spacy") == "transformer":
        return {"kind": "transformer", "batch_size": 16, "learning_rate": getattr(args, "learning_rate", None) or 1e-4}
    return {
        "tokenizer": args.tokenizer,
        "static_vectors": args.static_vectors,
        "spacy_ner": False,
        "split_lines": False,
        "batch_size": 16,
        **({"learning_rate": args.learning_rate} if getattr(args, "learning_rate", None) else {}),
    }


def _train_fn(args, labels, dev):
    return default_train_fn(
        labels,
        epochs=args.epochs,
        dev=dev or None,
        warm_start=args.warm_start,
        first_epochs=args.first_epochs,
        patience=args.patience,
        **_model_config(args),
    )


def _one_curve(job):
    args, spec, seed = job
    strategy, config = _parse_spec(spec)
    pool, ev, dev = _load(args)
    labels = args.labels.split(",")
    t0 = time.perf_counter()
    curve = simulate_active_learning(
        pool,
        ev,
        strategy,
        rounds=args.rounds,
        batch=args.batch,
        seed=seed,
        labels=labels,
        strategy_config=config,
        train_fn=_train_fn(args, labels, dev),
        skill=AnnotatorSkill.from_level(args.skill),
        progress=args.jobs == 1,
    )
    curve["seconds"] = round(time.perf_counter() - t0, 1)
    curve["spec"] = curve["strategy"] + (":" + spec.partition(":")[2] if ":" in spec else "")
    return curve


def _parse_spec(spec: str) -> tuple[str, dict]:
    """``"hybrid:aggregate=max+oversample=2"`` -> ``("hybrid", {"aggregate": "max", "oversample": 2})``."""
    name, _, rest = spec.partition(":")
    config: dict = {}
    for pair in filter(None, rest.split("+")):
        key, _, value = pair.partition("=")
        try:
            config[key] = json.loads(value)
        except json.JSONDecodeError:
            config[key] = value
    return name, config


def _full(job):
    args, seed = job
    pool, ev, dev = _load(args)
    labels = args.labels.split(",")
    # the ceiling: trained from scratch, up to --full-epochs with patient early stopping
    train_fn = default_train_fn(
        labels, epochs=args.full_epochs, dev=dev or None, patience=args.full_patience, **_model_config(args)
    )
    return full_pool_f1(pool, ev, labels, train_fn, seed=seed)


def summarise(curves: list[dict], full_f1: float, pool_size: int) -> dict:
    by: dict[str, list[dict]] = {}
    for c in curves:
        by.setdefault(c.get("spec", c["strategy"]), []).append(c)
    out: dict[str, dict] = {}
    random_edits = None
    if "random.v1" in by:
        random_edits = np.mean([[p["edits"] for p in c["points"]] for c in by["random.v1"]], axis=0)
    for name, cs in by.items():
        f1 = np.mean([[p["f1"] for p in c["points"]] for c in cs], axis=0)
        edits = np.mean([[p["edits"] for p in c["points"]] for c in cs], axis=0)
        n_docs = [p["n_docs"] for p in cs[0]["points"]]
        within = [k for k, n in enumerate(n_docs) if n <= 0.4 * pool_size]
        k40 = within[-1] if within else 0
        reach = [n for n, f in zip(n_docs, f1) if full_f1 > 0 and f >= 0.95 * full_f1]
        entry = {
            "seeds": len(cs),
            "n_docs": n_docs,
            "mean_f1": [round(float(x), 4) for x in f1],
            "mean_edits": [round(float(x), 1) for x in edits],
            "n_docs_at_40pct": n_docs[k40],
            "f1_at_40pct": round(float(f1[k40]), 4),
            "ratio_to_full_pool_f1": round(float(f1[k40] / full_f1), 4) if full_f1 else None,
            "first_n_docs_reaching_95pct": reach[0] if reach else None,
        }
        entry["mean_round_edits"] = [
            round(float(x), 1) for x in np.mean([[p.get("round_edits", 0) for p in c["points"]] for c in cs], axis=0)
        ]
        if random_edits is not None and len(random_edits) == len(edits):
            entry["edits_vs_random"] = [round(float(a / b), 4) if b else None for a, b in zip(edits, random_edits)]
            entry["fewer_edits_than_random_after_round_0"] = (
                bool(np.all(edits[1:] < random_edits[1:])) if name != "random.v1" else None
            )
        out[name] = entry
    return out


def plot(curves: list[dict], full_f1: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    by: dict[str, list[dict]] = {}
    for c in curves:
        by.setdefault(c.get("spec", c["strategy"]), []).append(c)
    for name, cs in sorted(by.items()):
        f1 = np.array([[p["f1"] for p in c["points"]] for c in cs])
        edits = np.array([[p["edits"] for p in c["points"]] for c in cs]).mean(axis=0)
        n_docs = [p["n_docs"] for p in cs[0]["points"]]
        for ax, x in ((axes[0], n_docs), (axes[1], edits)):
            (line,) = ax.plot(x, f1.mean(axis=0), marker="o", label=f"{name} ({len(cs)} seeds)")
            ax.fill_between(x, f1.min(axis=0), f1.max(axis=0), color=line.get_color(), alpha=0.15)
    for ax, xlabel in ((axes[0], "documents labelled"), (axes[1], "simulated expert edits (cumulative)")):
        ax.axhline(full_f1, color="k", ls="--", lw=1, label="full pool")
        ax.axhline(0.95 * full_f1, color="grey", ls=":", lw=1, label="95% of full pool")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("strict micro span F1 (Chia dev)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Active learning on Chia: fast spaCy model retrained each round")
    fig.tight_layout()
    with atomic_writer(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    chia = shared_corpora_dir() / "chia"
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument("--pool", type=Path, default=chia / "train.jsonl")
    ap.add_argument("--eval", type=Path, default=chia / "dev.jsonl")
    ap.add_argument("--strategies", default="random,entropy")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--labels", default=MAIN_LABELS)
    ap.add_argument(
        "--dev-size",
        type=int,
        default=100,
        help="notes carved from the pool (fixed seed) for early stopping; 0 = fixed epochs",
    )
    ap.add_argument(
        "--warm-start",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue each round from the previous round's model",
    )
    ap.add_argument(
        "--first-epochs",
        type=int,
        default=20,
        help="max epochs of the first training (default 3 x --epochs with --warm-start)",
    )
    ap.add_argument("--patience", type=int, default=2, help="early-stopping patience (with --dev-size)")
    ap.add_argument("--full-epochs", type=int, default=25, help="max epochs of the full-pool ceiling model")
    ap.add_argument("--full-patience", type=int, default=4, help="early-stopping patience of the ceiling")
    ap.add_argument(
        "--kind",
        choices=["spacy", "transformer"],
        default="spacy",
        help="model retrained each round: the fast spaCy tagger or the MiniLM token classifier",
    )
    ap.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="optimizer step size (default: the kind's; 1e-4 for the transformer)",
    )
    ap.add_argument("--tokenizer", choices=["default", "fine"], default="default")
    ap.add_argument("--static-vectors", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--skill", type=float, default=1.0, help="simulated expert skill (1.0 = gold)")
    ap.add_argument("--max-pool", type=int, default=0, help="subsample the pool (smoke runs); 0 = all")
    ap.add_argument("--jobs", type=int, default=1, help="curves trained in parallel processes")
    ap.add_argument("--output", type=Path, default=Path("bench_results"))
    ap.add_argument(
        "--merge",
        type=Path,
        default=None,
        help="al_curves(.partial).json of an earlier run with the same settings: its curves and "
        "full-pool F1 are reused (strategies already there are not re-run)",
    )
    args = ap.parse_args(argv)
    for path in (args.pool, args.eval):
        if not path.exists():
            print(f"error: {path} not found (set CLINICAL_NLP_SHARED or pass --pool/--eval)", file=sys.stderr)
            return 2
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if "random" not in strategies and "random.v1" not in strategies:
        strategies.insert(0, "random")
    t0 = time.perf_counter()
    pool, _, _ = _load(args)
    merged: list[dict] = []
    merged_full = None
    if args.merge is not None:
        earlier = json.loads(args.merge.read_text(encoding="utf-8"))
        merged, merged_full = earlier["curves"], earlier["full_pool_f1"]
        earlier_kind = earlier.get("settings", {}).get("kind", "spacy")
        if earlier_kind != args.kind:
            print(f"error: {args.merge} holds {earlier_kind} curves; this run trains {args.kind}", file=sys.stderr)
            return 2
        done = {(c.get("spec", c["strategy"]), c["seed"]) for c in merged}
        ceiling = "recomputed" if merged_full is None else f"{merged_full:.4f}"
        print(f"merging {len(merged)} curves from {args.merge} (full-pool F1 {ceiling})", flush=True)
    else:
        done = set()

    def _key(spec: str) -> str:
        name, _, rest = spec.partition(":")
        from clinical_nlp.active import resolve_name

        return resolve_name(name) + (":" + rest if rest else "")

    jobs = [(args, s, seed) for s in strategies for seed in range(args.seeds) if (_key(s), seed) not in done]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            full_future = ex.submit(_full, (args, 0)) if merged_full is None else None
            curves = list(merged) + list(ex.map(_one_curve, jobs))
            full_f1 = full_future.result() if full_future is not None else merged_full
    else:
        if merged_full is not None:
            full_f1 = merged_full
        else:
            full_f1 = _full((args, 0))
            print(f"full-pool F1 ({len(pool)} notes): {full_f1:.4f}", flush=True)
        curves = list(merged)
        for job in jobs:
            curves.append(_one_curve(job))
            # checkpoint after every curve, so a run cut short by a time limit keeps its curves
            args.output.mkdir(parents=True, exist_ok=True)
            with atomic_writer(args.output / "al_curves.partial.json") as handle:
                json.dump(
                    {"partial": True, "settings": {"kind": args.kind}, "full_pool_f1": full_f1, "curves": curves},
                    handle,
                )
            last = curves[-1]["points"][-1]
            print(
                f"{curves[-1]['spec']} seed {job[2]}: {last['n_docs']} docs F1 {last['f1']:.4f} "
                f"edits {last['edits']} ({curves[-1]['seconds']}s)",
                flush=True,
            )
    summary = summarise(curves, full_f1, len(pool))
    result = {
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("pool", "eval", "output")
        },
        "pool": args.pool.name,
        "eval": args.eval.name,
        "pool_size": len(pool),
        "full_pool_f1": full_f1,
        "summary": summary,
        "curves": curves,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    with atomic_writer(args.output / "al_curves.json") as handle:
        json.dump(result, handle, indent=2)
    plot(curves, full_f1, args.output / "al_curves.png")
    print(
        json.dumps(
            {
                "full_pool_f1": full_f1,
                "summary": {
                    k: {
                        kk: v[kk]
                        for kk in (
                            "n_docs_at_40pct",
                            "f1_at_40pct",
                            "ratio_to_full_pool_f1",
                            "first_n_docs_reaching_95pct",
                            "edits_vs_random",
                        )
                        if kk in v
                    }
                    for k, v in summary.items()
                },
            },
            indent=1,
        )
    )
    # issue 5's targets, met by one strategy together: 95% of the full-pool F1 with at most 40% of the
    # notes, and fewer simulated edits than random in every round after the first
    both = {
        k: (v.get("ratio_to_full_pool_f1") or 0.0) >= 0.95 and bool(v.get("fewer_edits_than_random_after_round_0"))
        for k, v in summary.items()
        if k != "random.v1"
    }
    best = max(both, key=lambda k: (both[k], summary[k].get("ratio_to_full_pool_f1") or 0.0), default=None)
    return check_targets(
        [Target(f"one strategy meets both AL targets (best: {best})", float(any(both.values())), ">=", 1.0)]
    )


if __name__ == "__main__":
    sys.exit(main())
