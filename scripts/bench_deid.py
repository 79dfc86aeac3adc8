"""Patient-grouped cross-validation of the de-identifier on the shared PhysioNet deid half.

Token-level scoring: a token (word/number) is PHI when it overlaps a gold span;
recall = PHI tokens detected / PHI tokens; precision over predicted tokens.
Each test patient's notes are de-identified together (as ``deidentify_rows`` does),
so names found in one note are propagated to the patient's other notes.
With --save, trains on the whole shared half and writes the packaged model and
the measured metrics (clinical_nlp/resources/deid/{tagger.npz,metrics.json}).

Usage: python scripts/bench_deid.py [--folds 5] [--threshold 0.98] [--kind crf|lr] [--save] [--output out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import Target, check_targets  # noqa: E402

from clinical_nlp.config import shared_corpora_dir  # noqa: E402
from clinical_nlp.deid.core import DEFAULT_THRESHOLD, METHOD, Detector  # noqa: E402
from clinical_nlp.deid.model import DEFAULT_MODEL, tokenize, train_tagger  # noqa: E402


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score(docs: list[dict], detector: Detector, counts: dict) -> None:
    by_patient: dict[str, list[dict]] = defaultdict(list)
    for d in docs:
        by_patient[str(d["patient"])].append(d)
    preds: dict[str, list] = {}
    for group in by_patient.values():
        for d, spans in zip(group, detector.detect_group([d["text"] for d in group])):
            preds[d["id"]] = spans
    for d in docs:
        text = d["text"]
        pred = preds[d["id"]]
        for a, b in tokenize(text):
            if not text[a:b].isalnum():
                continue
            g = next((s["label"] for s in d["spans"] if a < s["end"] and s["start"] < b), None)
            p = any(a < s.end and s.start < b for s in pred)
            key = g or "O"
            if g:
                counts[key]["gold"] += 1
                counts[key]["tp"] += int(p)
            if p:
                counts["_all"]["pred"] += 1
                counts["_all"]["tp_pred"] += int(g is not None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=shared_corpora_dir() / "deid_physionet" / "notes.jsonl")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--kind", choices=("crf", "lr"), default="crf", help="tagger model (default: crf)")
    ap.add_argument("--save", action="store_true", help="train on all notes and write the packaged model/metrics")
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()
    docs = load(args.corpus)
    patients = sorted(
        {str(d["patient"]) for d in docs}, key=lambda p: __import__("hashlib").sha1(p.encode()).hexdigest()
    )
    fold_of = {p: i % args.folds for i, p in enumerate(patients)}
    counts: dict = defaultdict(lambda: defaultdict(int))
    t0 = time.perf_counter()
    for k in range(args.folds):
        train = [d for d in docs if fold_of[str(d["patient"])] != k]
        test = [d for d in docs if fold_of[str(d["patient"])] == k]
        det = Detector(train_tagger(train, kind=args.kind), threshold=args.threshold)
        score(test, det, counts)
        print(f"fold {k + 1}/{args.folds} done", file=sys.stderr)
    gold = sum(v["gold"] for k, v in counts.items() if k != "_all")
    tp = sum(v["tp"] for k, v in counts.items() if k != "_all")
    name_labels = ("PTName", "PTNameInitial")
    name_gold = sum(counts[k]["gold"] for k in name_labels)
    name_tp = sum(counts[k]["tp"] for k in name_labels)
    result = {
        "method": METHOD,
        "corpus": "PhysioNet deid gold standard, shared half (1,248 notes, 81 patients)",
        "evaluation": f"{args.folds}-fold patient-grouped cross-validation, token level",
        "threshold": args.threshold,
        "tagger": args.kind,
        "token_recall": tp / gold if gold else None,
        "token_precision": counts["_all"]["tp_pred"] / counts["_all"]["pred"] if counts["_all"]["pred"] else None,
        "patient_name_recall": name_tp / name_gold if name_gold else None,
        "per_label_recall": {
            k: {"recall": v["tp"] / v["gold"], "tokens": v["gold"]}
            for k, v in sorted(counts.items())
            if k != "_all" and v["gold"]
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    if args.save:
        train_tagger(docs, kind=args.kind).save(DEFAULT_MODEL)
        (DEFAULT_MODEL.parent / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"saved {DEFAULT_MODEL}", file=sys.stderr)
    return check_targets(
        [
            Target("PHI token recall", result["token_recall"], ">=", 0.97),
            Target("patient-name recall", result["patient_name_recall"], ">=", 0.99),
            Target("token precision", result["token_precision"], ">=", 0.85),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
