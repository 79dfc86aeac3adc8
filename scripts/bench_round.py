#!/usr/bin/env python
"""Time full active-learning rounds of 50 notes over the real Doccano server.

Each round: select 50 notes (entropy; round 1 random), pre-annotate them with the
current model, push them to two simulated annotators in Doccano, let them correct
through the REST API as themselves, pull, reach consensus (expert oracle for the
queue), retrain the fast spaCy model on all gold and evaluate on the dev split.
Pool = the shared Chia train split when present (else the bundled sample), dev =
its dev split. Needs a running Doccano (``bash scripts/doccano.sh start``).

Target (issue 5): one 50-note round in under 3 minutes. Round 1 has no model yet
(rules pre-annotation); round 2 is the typical round (model pre-annotation).

Usage: python scripts/bench_round.py [--rounds 2] [--batch 50] [--output artifacts/bench_round.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=8, help="fast-model epochs per retrain")
    ap.add_argument("--output", type=Path, default=Path("artifacts/bench_round.json"))
    args = ap.parse_args()
    from clinical_nlp.config import shared_corpora_dir
    from clinical_nlp.demo import run_demo

    shared = shared_corpora_dir() / "chia"
    corpus = (
        shared if (shared / "train.jsonl").exists() else Path(__file__).resolve().parent.parent / "corpora" / "chia"
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-round-") as tmp:
        summary = run_demo(
            Path(tmp) / "project",
            rounds_n=args.rounds,
            batch=args.batch,
            corpus_dir=corpus,
            epochs=args.epochs,
            progress=False,
        )
    result = {
        "batch": args.batch,
        "corpus": str(corpus.name),
        "pool": "shared" if corpus == shared else "bundled",
        "round_seconds": summary["round_seconds"],
        "target_seconds": 180,
        "all_rounds_under_target": all(t < 180 for t in summary["round_seconds"]),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1min": round(os.getloadavg()[0], 2),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0 if result["all_rounds_under_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
