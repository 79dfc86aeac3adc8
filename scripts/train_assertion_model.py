#!/usr/bin/env python
"""Train the default assertion model (linear, over ConText cue features + context n-grams).

Reads the NegEx/ConText dev half (``<shared corpora>/negex_context/dev.jsonl``),
chooses the regularisation strength by 5-fold cross-validation grouped by
report within its development reports (``splits/negex-reports.json``; the locked
reports play no part in the choice), prints the cross-validated per-class F1,
trains on every row with that strength and writes the model to
``clinical_nlp/resources/assertion/assertion_linear.json`` (or ``--output``).

Usage: python scripts/train_assertion_model.py [--data FILE] [--output DIR] [--folds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from clinical_nlp.config import shared_corpora_dir
from clinical_nlp.io.jsonl import iter_json_rows
from clinical_nlp.models.assertion_training import class_f1 as f1
from clinical_nlp.pipeline.assertion import (
    ATTRIBUTES,
    DEFAULT_MODEL_DIR,
    LinearAssertionModel,
    apply_cascade,
    extract,
    load_cue_rules,
)
from splits import part_ids

LABEL_MAP = {"not particular": "hypothetical", "family member": "family"}
CLASSES = {
    "negation": ["affirmed", "negated", "possible"],
    "temporality": ["recent", "historical", "hypothetical"],
    "experiencer": ["patient", "family", "other"],
}
C_GRID = (0.3, 1.0, 3.0, 10.0)


SPLIT = Path(__file__).resolve().parent.parent / "splits" / "negex-reports.json"


def split_rows(rows: list[dict], part: str) -> list[dict]:
    """The rows of the development or the locked reports (``splits/negex-reports.json``)."""
    groups = part_ids(SPLIT.name, part)
    return [r for r in rows if str(r["group"]) in groups]


def load_rows(path: Path) -> list[dict]:
    rows = []
    for _, r in iter_json_rows(path):
        r = dict(r)
        for a in ATTRIBUTES:
            r[a] = LABEL_MAP.get(r[a], r[a])
        r["group"] = min(r.get("reports") or [0])
        rows.append(r)
    return rows


def featurize(rows: list[dict]) -> list[list[str]]:
    rules, _ = load_cue_rules(None)
    return [extract(r["text"], r["start"], r["end"], rules)[0] for r in rows]


def rule_decisions(rows: list[dict]) -> list[dict]:
    rules, _ = load_cue_rules(None)
    return [extract(r["text"], r["start"], r["end"], rules)[1] for r in rows]


def cascade_preds(rows: list[dict], preds: dict[str, list[str]]) -> dict[str, list[str]]:
    """The cascade's output (rule pass-through + model), as classify_assertions computes it."""
    out = {a: list(v) for a, v in preds.items()}
    for i, d in enumerate(rule_decisions(rows)):
        merged = apply_cascade({a: out[a][i] for a in ATTRIBUTES}, d)
        for a in ATTRIBUTES:
            out[a][i] = merged[a]
    return out


def fit_attr(X, y, C: float):
    from sklearn.linear_model import LogisticRegression

    if len(set(y)) < 2:
        return None
    clf = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
    clf.fit(X, y)
    return clf


def cross_validate(feats, rows, C: float, folds: int) -> dict[str, dict[str, float]]:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.model_selection import GroupKFold

    groups = np.array([r["group"] for r in rows])
    preds = {a: np.empty(len(rows), dtype=object) for a in ATTRIBUTES}
    for tr, te in GroupKFold(n_splits=folds).split(feats, groups=groups):
        vec = DictVectorizer()
        Xtr = vec.fit_transform([{f: 1 for f in feats[i]} for i in tr])
        Xte = vec.transform([{f: 1 for f in feats[i]} for i in te])
        for a in ATTRIBUTES:
            y = [rows[i][a] for i in tr]
            clf = fit_attr(Xtr, y, C)
            preds[a][te] = clf.predict(Xte) if clf is not None else y[0]
    return {a: {"pred": list(preds[a])} for a in ATTRIBUTES}


def class_f1s(rows: list[dict], preds: dict[str, list[str]]) -> dict[str, float]:
    out = {}
    for attr, cls in (
        ("negation", "negated"),
        ("negation", "possible"),
        ("temporality", "historical"),
        ("temporality", "hypothetical"),
        ("experiencer", "family"),
    ):
        gold = [r[attr] for r in rows]
        if cls in gold or cls in preds[attr]:
            out[cls] = round(f1(gold, preds[attr], cls), 4)
    return out


def train(rows: list[dict], C: float) -> LinearAssertionModel:
    from sklearn.feature_extraction import DictVectorizer

    feats = featurize(rows)
    vec = DictVectorizer()
    X = vec.fit_transform([{f: 1 for f in fs} for fs in feats])
    names = vec.get_feature_names_out()
    weights: dict[str, dict[str, list[float]]] = {}
    classes: dict[str, list[str]] = {}
    for a in ATTRIBUTES:
        y = [r[a] for r in rows]
        clf = fit_attr(X, y, C)
        if clf is None:
            continue
        cl = list(clf.classes_)
        coef = clf.coef_
        if len(cl) == 2:  # binary: softmax-equivalent weights for two classes
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            icpt = [-clf.intercept_[0] / 2, clf.intercept_[0] / 2]
        else:
            icpt = list(clf.intercept_)
        table = {}
        for j, name in enumerate(names):
            w = coef[:, j]
            if np.abs(w).max() > 1e-4:
                table[str(name)] = [round(float(v), 5) for v in w]
        table["BIAS"] = [round(float(v) + (table.get("BIAS", [0] * len(cl))[i]), 5) for i, v in enumerate(icpt)]
        weights[a] = table
        classes[a] = cl
    return LinearAssertionModel(
        weights,
        classes,
        {
            "name": "assertion-linear",
            "version": "1.0",
            "C": C,
            "trained_on": "negex_context/dev.jsonl",
            "rows": len(rows),
        },
        "",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=shared_corpora_dir() / "negex_context" / "dev.jsonl")
    ap.add_argument("--output", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--C", type=float, default=None, help="skip the CV search and use this C")
    args = ap.parse_args(argv)
    every = load_rows(args.data)
    rows = split_rows(every, "dev")  # C is chosen on the development reports only
    feats = featurize(rows)
    report = {}
    grid = (args.C,) if args.C else C_GRID
    best, best_score = grid[0], -1.0
    for C in grid:
        cv = cross_validate(feats, rows, C, args.folds)
        scores = class_f1s(rows, cascade_preds(rows, {a: cv[a]["pred"] for a in ATTRIBUTES}))
        obj = scores.get("negated", 0) + scores.get("historical", 0) + scores.get("hypothetical", 0)
        report[str(C)] = scores
        print(f"C={C}: grouped {args.folds}-fold CV F1 {scores}")
        if obj > best_score:
            best, best_score = C, obj
    model = train(every, best)  # the shipped model learns from every row of the dev half
    model.meta["cv"] = report
    model.meta["cv_on"] = "development reports of splits/negex-reports.json"
    path = model.save(args.output)
    print(f"chose C={best}; wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    print(json.dumps(report[str(best)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
