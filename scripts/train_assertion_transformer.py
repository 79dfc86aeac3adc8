#!/usr/bin/env python
"""Train the transformer assertion model of the accurate mode (MiniLM, concept marked, calibrated).

Protocol (development reports of ``splits/negex-reports.json`` only; the locked reports play no
part in any choice):

1. 5-fold cross-validation grouped by report: a model per fold, out-of-fold probabilities after
   every epoch; the epoch with the best negated + historical + hypothetical F1 is chosen, and each
   head's temperature is fitted on the out-of-fold logits of that epoch (calibration).
2. The same folds for the shipped linear model (``train_assertion_model.py``'s features and C);
   the routing threshold (rows whose lowest linear confidence is below it also go to the
   transformer) and the blend weight are chosen on the pooled out-of-fold predictions, with the
   cascade's pass-through rules applied, preferring fewer routed rows on ties.
3. The shipped model is trained on every row of the dev half with the chosen epoch count and
   temperatures, and written to ``clinical_nlp/resources/assertion/transformer`` (``--output``).

Usage: python scripts/train_assertion_transformer.py [--data FILE] [--output DIR] [--folds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from train_assertion_model import cascade_preds, class_f1s, featurize, fit_attr, load_rows, split_rows

from clinical_nlp.config import shared_corpora_dir
from clinical_nlp.models.assertion_training import TrainConfig, train_transformer
from clinical_nlp.models.assertion_transformer import CLASSES, DEFAULT_TRANSFORMER_DIR, fit_temperature, softmax
from clinical_nlp.pipeline.assertion import load_model

ROUTE_GRID = (0.6, 0.7, 0.8, 0.9, 0.95, 1.01)
WEIGHT_GRID = (0.2, 0.3, 0.5, 0.7)
SUM3 = ("negated", "historical", "hypothetical")


def folds(rows: list[dict], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold

    groups = np.array([r["group"] for r in rows])
    return list(GroupKFold(n_splits=k).split(rows, groups=groups))


def transformer_oof(rows: list[dict], splits, cfg: TrainConfig) -> dict[int, dict[str, np.ndarray]]:
    """Out-of-fold logits per epoch."""
    oof = {
        e: {a: np.zeros((len(rows), len(c)), dtype=np.float32) for a, c in CLASSES.items()}
        for e in range(1, cfg.epochs + 1)
    }
    for k, (tr, te) in enumerate(splits, 1):
        t0 = time.perf_counter()

        def keep(epoch: int, logits: dict[str, np.ndarray], te=te) -> None:
            for a in CLASSES:
                oof[epoch][a][te] = logits[a]

        train_transformer(
            [rows[i] for i in tr], val_rows=[rows[i] for i in te], config=cfg, progress=False, on_epoch=keep
        )
        print(f"fold {k}/{len(splits)} done in {time.perf_counter() - t0:.0f}s", flush=True)
    return oof


def linear_oof(rows: list[dict], splits, C: float) -> dict[str, np.ndarray]:
    from sklearn.feature_extraction import DictVectorizer

    feats = featurize(rows)
    out = {a: np.zeros((len(rows), len(c))) for a, c in CLASSES.items()}
    for tr, te in splits:
        vec = DictVectorizer()
        Xtr = vec.fit_transform([dict.fromkeys(feats[i], 1) for i in tr])
        Xte = vec.transform([dict.fromkeys(feats[i], 1) for i in te])
        for a, classes in CLASSES.items():
            y = [rows[i][a] for i in tr]
            clf = fit_attr(Xtr, y, C)
            if clf is None:
                out[a][np.ix_(te, [classes.index(y[0])])] = 1.0
                continue
            proba = clf.predict_proba(Xte)
            for j, c in enumerate(clf.classes_):
                out[a][te, classes.index(c)] = proba[:, j]
    return out


def scores(rows: list[dict], probs: dict[str, np.ndarray]) -> dict[str, float]:
    preds = {a: [CLASSES[a][j] for j in probs[a].argmax(1)] for a in CLASSES}
    return class_f1s(rows, cascade_preds(rows, preds))


def total(s: dict[str, float]) -> float:
    return round(sum(s.get(c, 0.0) for c in SUM3), 4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=shared_corpora_dir() / "negex_context" / "dev.jsonl")
    ap.add_argument("--output", type=Path, default=DEFAULT_TRANSFORMER_DIR)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="epochs tried (the best is kept)")
    ap.add_argument("--top-layers", type=int, default=TrainConfig.top_layers)
    args = ap.parse_args(argv)
    every = load_rows(args.data)
    dev = split_rows(every, "dev")
    splits = folds(dev, args.folds)
    cfg = TrainConfig(top_layers=args.top_layers, epochs=args.epochs)
    print(f"{args.folds}-fold CV on {len(dev)} development rows, {cfg.epochs} epochs, top {cfg.top_layers} layers")
    oof = transformer_oof(dev, splits, cfg)
    by_epoch = {e: total(scores(dev, {a: softmax(v) for a, v in lg.items()})) for e, lg in oof.items()}
    epoch = max(by_epoch, key=lambda e: (by_epoch[e], -e))
    gold = {a: [CLASSES[a].index(r[a]) for r in dev] for a in CLASSES}
    temps = {a: fit_temperature(oof[epoch][a], gold[a]) for a in CLASSES}
    t_probs = {a: softmax(oof[epoch][a] / temps[a]) for a in CLASSES}
    C = float(load_model(None).meta.get("C", 0.3))
    l_probs = linear_oof(dev, splits, C)
    conf = np.min(np.stack([l_probs[a].max(1) for a in CLASSES]), axis=0)
    grid = {}
    for route in ROUTE_GRID:
        for w in WEIGHT_GRID:
            r = (conf < route)[:, None]
            blended = {a: np.where(r, w * t_probs[a] + (1 - w) * l_probs[a], l_probs[a]) for a in CLASSES}
            grid[(route, w)] = (total(scores(dev, blended)), float(r.mean()), scores(dev, blended))
    route, weight = max(grid, key=lambda k: (grid[k][0], -grid[k][1], -k[1]))
    report = {
        "cv_on": f"{len(dev)} development rows (splits/negex-reports.json), {args.folds} folds by report",
        "transformer_by_epoch": by_epoch,
        "transformer_alone": scores(dev, t_probs),
        "linear_alone": scores(dev, l_probs),
        "accurate_mode": grid[(route, weight)][2],
        "routed_share": round(grid[(route, weight)][1], 3),
    }
    print(json.dumps(report, indent=2))
    print(f"chose epochs={epoch}, temperatures={temps}, route_below={route}, weight={weight}")
    final = TrainConfig(top_layers=cfg.top_layers, epochs=epoch, temperatures=temps)
    model, _ = train_transformer(every, config=final, progress=True)
    model.meta.update(
        name="assertion-minilm",
        version="1.0",
        trained_on="negex_context/dev.jsonl (every row)",
        rows=len(every),
        epochs=epoch,
        route_below=route,
        weight=weight,
        cv=report,
    )
    path = model.save(args.output)
    from clinical_nlp.models.assertion_onnx import export_graph

    export_graph(model, path)  # the accurate mode runs it with ONNX Runtime (no torch import)
    size = sum(f.stat().st_size for f in path.iterdir()) / 1e6
    print(f"wrote {path} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
