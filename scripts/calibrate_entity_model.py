#!/usr/bin/env python
"""Calibrate an entity model's span scores: per label, score -> probability the span is exactly right.

Fits an isotonic regression per label (scikit-learn) of "the predicted span matches a gold span
exactly, boundaries and label" on the raw span scores of the ``tune`` trials of
``splits/chia-dev-trials.json`` (Chia dev), and writes ``calibration.json`` into the model
directory; :meth:`EntityModel.predict` then reports calibrated scores. Prints the expected
calibration error before and after on the ``report`` trials (never fitted on).

Usage: python scripts/calibrate_entity_model.py [--model DIR] [--data FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_preannotation import ece, gold_spans, trial_split

from clinical_nlp.config import shared_corpora_dir
from clinical_nlp.io.jsonl import iter_json_rows
from clinical_nlp.models.default_entities import DEFAULT_ENTITY_MODEL_DIR
from clinical_nlp.models.entities.base import CALIBRATION_FILE
from clinical_nlp.types import Note

MIN_SPANS = 20  # a label with fewer tune spans keeps its raw scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_ENTITY_MODEL_DIR)
    ap.add_argument("--data", type=Path, default=shared_corpora_dir() / "chia" / "dev.jsonl")
    args = ap.parse_args(argv)
    from sklearn.isotonic import IsotonicRegression

    from clinical_nlp.models.registry import load_entity_model

    (args.model / CALIBRATION_FILE).unlink(missing_ok=True)  # fit on raw scores
    model = load_entity_model(args.model)
    rows = [r for _, r in iter_json_rows(args.data)]
    split = trial_split(rows)
    labels = set(model.labels)
    parts = {p: [r for r in rows if r["trial"] in set(split[p])] for p in ("tune", "report")}
    preds = {p: model.predict([Note(r["id"], r["text"]) for r in rs]) for p, rs in parts.items()}
    golds = {p: [gold_spans(r, labels) for r in rs] for p, rs in parts.items()}
    table: dict[str, dict[str, list[float]]] = {}
    for label in sorted(labels):
        xs, ys = [], []
        for pred, gold in zip(preds["tune"], golds["tune"], strict=True):
            keys = {(s.start, s.end) for s in gold if s.label == label}
            for s in pred:
                if s.label == label:
                    xs.append(float(s.score or 0.0))
                    ys.append(float((s.start, s.end) in keys))
        if len(xs) < MIN_SPANS:
            print(f"{label}: {len(xs)} tune spans, left uncalibrated")
            continue
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(xs, ys)
        table[label] = {
            "x": [round(float(v), 4) for v in iso.X_thresholds_],
            "y": [round(float(v), 4) for v in iso.y_thresholds_],
        }
        print(f"{label}: {len(xs)} tune spans, {sum(ys) / len(ys):.2f} exact")
    before = ece(preds["report"], golds["report"])
    meta = {"fitted_on": "tune trials of splits/chia-dev-trials.json (Chia dev)", "labels": table}
    (args.model / CALIBRATION_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    calibrated = load_entity_model(args.model)
    after_preds = calibrated.predict([Note(r["id"], r["text"]) for r in parts["report"]])
    after = ece(after_preds, golds["report"])
    print(json.dumps({"report_trials_ece_before": before, "report_trials_ece_after": after}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
