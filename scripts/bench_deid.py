"""The de-identifier on the shared PhysioNet deid half, split by patient (``splits/deid-patients.json``).

``--part dev`` (default): patient-grouped cross-validation within the development patients; the
only part whose individual misses may be read (``--show-misses``). ``--part locked``: the tagger
trained on the development notes, scored once on the locked patients; aggregate figures only, no
script prints a locked miss. Rules, lexicons and thresholds are chosen on the development part.

Token-level scoring: a token (word/number) is PHI when it overlaps a gold span;
recall = PHI tokens detected / PHI tokens; precision over predicted tokens.
Each test patient's notes are de-identified together (as ``deidentify_rows`` does),
so names found in one note are propagated to the patient's other notes.
With --save, trains on the whole shared half and writes the packaged model and
the measured metrics (clinical_nlp/resources/deid/{tagger.npz,metrics.json}).

Usage: python scripts/bench_deid.py [--part dev|locked] [--folds 5] [--kind crf|lr]
       [--threshold 0.9[,0.5,...]] [--review-below 0.98[,0.99,...]] (comma lists: a dev grid)
       [--detector crf|ensemble [--strong 0.3,0.5,0.7] [--epochs 3] [--copies 1]]
       [--show-misses] [--save] [--output out.json]
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
from clinical_nlp.deid.augment import augment  # noqa: E402
from clinical_nlp.deid.core import DEFAULT_REVIEW_BELOW, DEFAULT_THRESHOLD, METHOD, Detector  # noqa: E402
from clinical_nlp.deid.model import DEFAULT_MODEL, tokenize, train_tagger  # noqa: E402
from clinical_nlp.deid.review import is_near_miss  # noqa: E402
from clinical_nlp.deid.transformer import (  # noqa: E402
    DEFAULT_CRF_BELOW,
    DEFAULT_STRONG,
    ENSEMBLE_REVIEW_BELOW,
    ENSEMBLE_THRESHOLD,
)
from clinical_nlp.deid.transformer_training import PHITrainConfig  # noqa: E402
from splits import part_ids  # noqa: E402


def floats(value: str) -> list[float]:
    """``"0.3,0.5"`` → ``[0.3, 0.5]`` (a grid on the command line)."""
    return [float(x) for x in value.split(",")]


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


SPLIT = Path(__file__).resolve().parent.parent / "splits" / "deid-patients.json"


def split_docs(docs: list[dict], part: str) -> list[dict]:
    """The notes of the development or the locked patients."""
    patients = part_ids(SPLIT.name, part)
    return [d for d in docs if str(d["patient"]) in patients]


def score(
    docs: list[dict], detector: Detector, counts: dict, misses: list | None = None, false_positives: bool = False
) -> None:
    """Token counts of ``detector`` on ``docs`` into ``counts``; misses (and false positives) into ``misses``."""
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
        counts["_queue"]["notes"] += 1
        counts["_queue"]["items"] += sum(1 for s in pred if s.review)
        counts["_queue"]["near_misses"] += sum(1 for s in pred if is_near_miss(s))
        for a, b in tokenize(text):
            if not text[a:b].isalnum():
                continue
            g = next((s["label"] for s in d["spans"] if a < s["end"] and s["start"] < b), None)
            p = any(a < s.end and s.start < b for s in pred)
            p_alone = any(a < s.end and s.start < b for s in pred if not is_near_miss(s))  # without the queue
            key = g or "O"
            if g:
                counts[key]["gold"] += 1
                counts[key]["tp"] += int(p)
                counts[key]["tp_alone"] += int(p_alone)
                if not p and misses is not None:
                    misses.append((d["id"], g, text[max(0, a - 40) : b + 40].replace("\n", " "), text[a:b]))
            if p:
                counts["_all"]["pred"] += 1
                counts["_all"]["tp_pred"] += int(g is not None)
                if g is None and misses is not None and false_positives:
                    label = next(s.label for s in pred if a < s.end and s.start < b)
                    misses.append(
                        (d["id"], f"false {label}", text[max(0, a - 40) : b + 40].replace("\n", " "), text[a:b])
                    )


def summarise(
    counts: dict,
    args: argparse.Namespace,
    docs: list[dict],
    threshold: float,
    review: float | None,
    method: str = METHOD,
) -> dict:
    """Aggregate figures of one configuration (no individual token)."""
    gold = sum(v["gold"] for k, v in counts.items() if not k.startswith("_"))
    tp = sum(v["tp"] for k, v in counts.items() if not k.startswith("_"))
    tp_alone = sum(v["tp_alone"] for k, v in counts.items() if not k.startswith("_"))
    queue = counts["_queue"]
    name_labels = ("PTName", "PTNameInitial")
    name_gold = sum(counts[k]["gold"] for k in name_labels)
    name_tp = sum(counts[k]["tp"] for k in name_labels)
    return {
        "method": method,
        "corpus": f"PhysioNet deid gold standard, shared half, {args.part} part ({len(docs)} notes, "
        f"{len({str(d['patient']) for d in docs})} patients; splits/deid-patients.json)",
        "evaluation": (
            f"{args.folds}-fold patient-grouped cross-validation within the development patients, token level"
            if args.part == "dev"
            else "tagger trained on the development patients, scored once on the locked ones, token level"
        ),
        "threshold": threshold,
        "tagger": args.kind,
        "detector": args.detector,
        "augment": args.augment,
        "token_recall": tp / gold if gold else None,
        "review_below": review,
        "token_recall_without_review_queue": tp_alone / gold if gold else None,
        "review_items_per_100_notes": round(100 * queue["items"] / max(1, queue["notes"]), 1),
        "near_misses_per_100_notes": round(100 * queue["near_misses"] / max(1, queue["notes"]), 1),
        "token_precision": counts["_all"]["tp_pred"] / counts["_all"]["pred"] if counts["_all"]["pred"] else None,
        "patient_name_recall": name_tp / name_gold if name_gold else None,
        "per_label_recall": {
            k: {"recall": v["tp"] / v["gold"], "tokens": v["gold"]}
            for k, v in sorted(counts.items())
            if not k.startswith("_") and v["gold"]
        },
    }


def detectors(train: list[dict], args: argparse.Namespace) -> dict[tuple, Detector]:
    """Trained on ``train``: the CRF for each (``--threshold``, ``--review-below``) pair, keyed
    ``("crf", T, Q)``; or, for the ensemble, one per ``--strong`` value and 0 (the CRF alone)."""
    crf = train_tagger(train + augment(train, copies=args.augment, seed=0) if args.augment else train, kind=args.kind)
    if args.detector == "crf":
        return {
            ("crf", t, q): Detector(crf, threshold=t, review_below=q or None)
            for t in args.threshold
            for q in args.review_below
        }
    threshold, review = args.threshold[0], args.review_below[0] or None
    from clinical_nlp.deid.transformer import EnsembleTagger
    from clinical_nlp.deid.transformer_training import PHITrainConfig, train_phi_transformer

    cfg = PHITrainConfig(
        epochs=args.epochs, copies=args.copies, top_layers=args.top_layers, label_weights=args.label_weights
    )
    minilm = train_phi_transformer(train, config=cfg, progress=True)
    values = sorted(set(args.strong) | {0.0})  # 0: the MiniLM never overrides, the CRF's figures in the same run
    return {
        (s, c): Detector(EnsembleTagger(crf, minilm, s, c), threshold=threshold, review_below=review)
        for s in values
        for c in (args.crf_below if s else [1.0])
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=shared_corpora_dir() / "deid_physionet" / "notes.jsonl")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threshold", type=floats, default=None,
                    help="detection P(O) threshold(s), comma-separated (default: the detector's)")  # fmt: skip
    ap.add_argument("--kind", choices=("crf", "lr"), default="crf", help="tagger model (default: crf)")
    ap.add_argument("--detector", choices=("crf", "ensemble"), default="crf",
                    help="crf: the CRF tagger alone (default); ensemble: CRF + fine-tuned MiniLM")  # fmt: skip
    ap.add_argument("--strong", type=floats, default=[DEFAULT_STRONG],
                    help="ensemble: MiniLM P(not PHI) under which it overrides the CRF (comma list: dev)")  # fmt: skip
    ap.add_argument("--crf-below", type=floats, default=[DEFAULT_CRF_BELOW],
                    help="ensemble: ... only where the CRF's P(not PHI) is under this (comma list: dev)")  # fmt: skip
    ap.add_argument("--epochs", type=int, default=PHITrainConfig.epochs, help="ensemble: MiniLM epochs")
    ap.add_argument("--copies", type=int, default=PHITrainConfig.copies, help="ensemble: MiniLM surrogate copies")
    ap.add_argument("--top-layers", type=int, default=PHITrainConfig.top_layers, help="ensemble: fine-tuned layers")
    ap.add_argument("--label-weights", action=argparse.BooleanOptionalAction, default=PHITrainConfig.label_weights,
                    help="ensemble: weight the MiniLM's labels by sqrt inverse frequency")  # fmt: skip
    ap.add_argument("--save", action="store_true", help="train on all notes and write the packaged model/metrics")
    ap.add_argument("--output", type=Path, default=None)
    ap.add_argument("--save-metrics", action="store_true",
                    help="locked: write the figures the dataset report shows (resources/deid/)")  # fmt: skip
    ap.add_argument("--part", choices=("dev", "locked"), default="dev", help="which part of the split to score")
    ap.add_argument("--review-below", type=floats, default=None,
                    help="privacy review queue: flag words with P(not PHI) under this (0: no queue; "
                         "default: the detector's)")  # fmt: skip
    ap.add_argument("--augment", type=int, default=0, help="surrogate copies of each training note with PHI (CRF)")
    ap.add_argument("--show-misses", action="store_true", help="print each missed PHI token (development only)")
    ap.add_argument("--show-false-positives", action="store_true",
                    help="with --show-misses, also print each token wrongly taken for PHI (dev only)")  # fmt: skip
    args = ap.parse_args()
    if args.show_misses and args.part == "locked":
        print("refused: the locked part's individual misses are never printed", file=sys.stderr)
        return 2
    if args.save and args.detector != "crf":
        print("refused: --save writes the CRF; scripts/train_deid_transformer.py builds the MiniLM", file=sys.stderr)
        return 2
    if args.part == "locked" and (len(args.strong) > 1 or len(args.crf_below) > 1):
        print("refused: one --strong value on the locked part (choose it on the development part)", file=sys.stderr)
        return 2
    ensemble = args.detector == "ensemble"
    args.threshold = args.threshold or [ENSEMBLE_THRESHOLD if ensemble else DEFAULT_THRESHOLD]
    args.review_below = args.review_below or [ENSEMBLE_REVIEW_BELOW if ensemble else DEFAULT_REVIEW_BELOW]
    if (args.part == "locked" or ensemble) and (len(args.threshold) > 1 or len(args.review_below) > 1):
        print("refused: a --threshold / --review-below grid runs on the development part, CRF only", file=sys.stderr)
        return 2
    main_key = (args.strong[0], args.crf_below[0]) if ensemble else ("crf", args.threshold[0], args.review_below[0])
    every = load(args.corpus)
    dev_docs = split_docs(every, "dev")
    counts: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    misses: list | None = [] if args.show_misses else None
    detect_seconds: dict = {}  # locked: detection and scoring time per detector (models already loaded)
    methods: dict = {}  # locked: the method each detector records
    t0 = time.perf_counter()
    if args.part == "locked":
        docs = split_docs(every, "locked")
        for s, det in detectors(dev_docs, args).items():
            methods[s] = det.method
            t1 = time.perf_counter()
            score(docs, det, counts[s])
            detect_seconds[s] = round(time.perf_counter() - t1, 1)
    else:
        docs = dev_docs
        patients = sorted(
            {str(d["patient"]) for d in docs}, key=lambda p: __import__("hashlib").sha1(p.encode()).hexdigest()
        )
        fold_of = {p: i % args.folds for i, p in enumerate(patients)}
        for k in range(args.folds):
            train = [d for d in docs if fold_of[str(d["patient"])] != k]
            test = [d for d in docs if fold_of[str(d["patient"])] == k]
            for s, det in detectors(train, args).items():
                shown = misses if s == main_key else None
                score(test, det, counts[s], shown, args.show_false_positives)
            print(f"fold {k + 1}/{args.folds} done", file=sys.stderr)
    for m in misses or []:
        print("miss", json.dumps(m), file=sys.stderr)
    results = {}
    for s, c in counts.items():
        crf_key = s[0] == "crf"
        threshold, review = (s[1], s[2]) if crf_key else (args.threshold[0], args.review_below[0])
        results[s] = summarise(c, args, docs, threshold, review or None, methods.get(s, METHOD)) | {
            "strong": None if crf_key else s[0],
            "crf_below": None if crf_key else s[1],
            "detect_seconds": detect_seconds.get(s),
        }
    seconds = round(time.perf_counter() - t0, 1)
    for r in results.values():
        r["seconds"] = seconds
    result = results[main_key]
    print(json.dumps(list(results.values()) if len(results) > 1 else result, indent=2))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    if args.save_metrics and args.part == "locked":
        name = "metrics.json" if args.detector == "crf" else "metrics_ensemble.json"
        (DEFAULT_MODEL.parent / name).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.save:
        train_tagger(every, kind=args.kind).save(DEFAULT_MODEL)
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
