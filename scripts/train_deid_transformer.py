#!/usr/bin/env python
"""Train the MiniLM PHI tagger of ``clinical-nlp deid --detector ensemble`` and write the shipped model.

Trained on every note of the shared PhysioNet deid half (as the packaged CRF is) with the
configuration chosen by patient-grouped cross-validation on the development patients
(``python scripts/bench_deid.py --part dev --folds 2 --detector ensemble --strong ...``, RESULTS.md);
fixed seed, and the corpus hash in the model's meta.

Usage: python scripts/train_deid_transformer.py [--corpus notes.jsonl] [--output DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clinical_nlp.config import shared_corpora_dir  # noqa: E402
from clinical_nlp.deid.transformer import DEFAULT_CRF_BELOW, DEFAULT_PHI_TRANSFORMER_DIR, DEFAULT_STRONG  # noqa: E402
from clinical_nlp.deid.transformer_training import PHITrainConfig, train_phi_transformer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=shared_corpora_dir() / "deid_physionet" / "notes.jsonl")
    ap.add_argument("--output", type=Path, default=DEFAULT_PHI_TRANSFORMER_DIR)
    args = ap.parse_args()
    raw = args.corpus.read_bytes()
    notes = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    model = train_phi_transformer(notes, config=PHITrainConfig())
    model.meta.update(
        corpus_sha256=hashlib.sha256(raw).hexdigest()[:16], strong=DEFAULT_STRONG, crf_below=DEFAULT_CRF_BELOW
    )
    model.save(args.output)
    print(f"saved {args.output} ({model.name}, {len(notes)} notes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
