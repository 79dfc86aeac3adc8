#!/usr/bin/env python
"""Export the MiniLM PHI tagger for ONNX Runtime and check it against torch.

``TransformerPHITagger.save`` (``make model``: ``scripts/train_deid_transformer.py``) already writes
the graph; this script adds it to a tagger saved before (``graph.onnx`` in
``resources/deid/transformer``, :mod:`clinical_nlp.deid.transformer_onnx`), then compares both
runtimes on the first ``--notes`` notes of the shared PhysioNet half (no labels read, so no split is
involved): the windows' word pieces, the words' logits, and the PHI the ensemble detector finds.
Exits 1 if a logit differs by more than ``--tolerance`` or a detected span differs.

Usage: python scripts/export_deid_onnx.py [--model DIR] [--notes 200] [--tolerance 1e-3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from clinical_nlp.config import shared_corpora_dir
from clinical_nlp.deid.core import Detector
from clinical_nlp.deid.model import load_tagger, tokenize
from clinical_nlp.deid.transformer import (
    DEFAULT_CRF_BELOW,
    DEFAULT_PHI_TRANSFORMER_DIR,
    DEFAULT_STRONG,
    ENSEMBLE_REVIEW_BELOW,
    ENSEMBLE_THRESHOLD,
    EnsembleTagger,
    TransformerPHITagger,
)
from clinical_nlp.deid.transformer_onnx import OnnxPHITagger, export_phi_graph


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_PHI_TRANSFORMER_DIR)
    ap.add_argument("--notes", type=int, default=200)
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args(argv)
    torch_tagger = TransformerPHITagger.load(args.model)
    digest = export_phi_graph(torch_tagger, args.model)
    print(f"wrote {args.model / 'graph.onnx'} ({(args.model / 'graph.onnx').stat().st_size / 1e3:.0f} kB, {digest})")
    path = shared_corpora_dir() / "deid_physionet" / "notes.jsonl"
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = texts[: args.notes]
    onnx_tagger = OnnxPHITagger.load(args.model)
    same_pieces = all(
        np.array_equal(torch_tagger.windows(t).enc["input_ids"].numpy(), onnx_tagger.windows(t).enc["input_ids"])
        for t in texts
        if t.strip()
    )
    t0 = time.perf_counter()
    ref = [torch_tagger.word_logits(t, tokenize(t)) for t in texts]
    t1 = time.perf_counter()
    got = [onnx_tagger.word_logits(t, tokenize(t)) for t in texts]
    t2 = time.perf_counter()
    worst = max((float(np.abs(a - b).max()) for a, b in zip(ref, got, strict=True) if len(a)), default=0.0)

    def found(tagger) -> list[set]:
        det = Detector(
            EnsembleTagger(load_tagger(), tagger, DEFAULT_STRONG, DEFAULT_CRF_BELOW),
            threshold=ENSEMBLE_THRESHOLD,
            review_below=ENSEMBLE_REVIEW_BELOW,
        )
        return [{(s.start, s.end, s.label) for s in det.detect(t)} for t in texts]

    differ = sum(a != b for a, b in zip(found(torch_tagger), found(onnx_tagger), strict=True))
    print(
        f"{len(texts)} notes: same word pieces {same_pieces}; largest logit difference {worst:.2e} "
        f"(tolerance {args.tolerance:g}); notes whose detected PHI differs: {differ}; "
        f"MiniLM logits torch {t1 - t0:.1f} s, ONNX Runtime {t2 - t1:.1f} s"
    )
    return 0 if same_pieces and worst <= args.tolerance and differ == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
