#!/usr/bin/env python
"""Export the relation model's MiniLM pair scorer for ONNX Runtime and check it against torch.

``RelationModel.save`` (``make model``, ``clinical-nlp train relations``) already writes the graph;
this script adds it to a model saved before (``graph.onnx`` in the model's ``minilm/`` directory,
:mod:`clinical_nlp.models.relations_onnx`), then compares both runtimes' pair probabilities on the
first ``--rows`` Chia criteria (train, then dev; no labels are read) and the links the whole model
predicts with each. Exits 1 if a probability differs by more than ``--tolerance`` or a link differs.

Usage: python scripts/export_relations_onnx.py [--model DIR] [--rows 300] [--tolerance 1e-3]
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
from clinical_nlp.models.relations import DEFAULT_RELATION_MODEL_DIR, MINILM_DIR, candidates, load_relation_model
from clinical_nlp.models.relations_minilm import MiniLMPairScorer
from clinical_nlp.models.relations_onnx import OnnxPairScorer, export_pair_graph


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_RELATION_MODEL_DIR)
    ap.add_argument("--chia", type=Path, default=shared_corpora_dir() / "chia")
    ap.add_argument("--rows", type=int, default=300, help="compare on the first N criteria documents")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args(argv)
    scorer_dir = args.model / MINILM_DIR
    torch_scorer = MiniLMPairScorer.load(scorer_dir)
    digest = export_pair_graph(torch_scorer, scorer_dir)
    print(f"wrote {scorer_dir / 'graph.onnx'} ({(scorer_dir / 'graph.onnx').stat().st_size / 1e3:.0f} kB, {digest})")
    rows = [
        json.loads(line)
        for name in ("train.jsonl", "dev.jsonl")
        for line in (args.chia / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ][: args.rows]
    model = load_relation_model(args.model)
    cands = [candidates(r, model.allowed) for r in rows]
    t0 = time.perf_counter()
    ref = torch_scorer.pair_probs(rows, cands)
    t1 = time.perf_counter()
    onnx_scorer = OnnxPairScorer.load(scorer_dir)
    got = onnx_scorer.pair_probs(rows, cands)
    t2 = time.perf_counter()
    worst = max((float(np.abs(a - b).max()) for a, b in zip(ref, got, strict=True) if len(a)), default=0.0)
    model.scorer = torch_scorer
    links_torch = model.predict(rows)
    model.scorer = onnx_scorer
    links_onnx = model.predict(rows)

    def keys(links: list[list[dict]]) -> list[set[tuple]]:
        return [{(r["type"], r["arg1"], r["arg2"]) for r in row} for row in links]

    differ = sum(a != b for a, b in zip(keys(links_torch), keys(links_onnx), strict=True))

    def scores(row: list[dict]) -> dict[tuple, float]:
        return {(r["type"], r["arg1"], r["arg2"]): float(r["score"]) for r in row}

    score_gap = max(
        (
            abs(s - scores(y).get(k, s))
            for x, y in zip(links_torch, links_onnx, strict=True)
            for k, s in scores(x).items()
        ),
        default=0.0,
    )
    same = differ == 0
    n_pairs = sum(len(c) for c in cands)
    print(
        f"{len(rows)} criteria, {n_pairs} candidate pairs: largest probability difference {worst:.2e} "
        f"(tolerance {args.tolerance:g}); criteria whose links differ: {differ} (largest link-score difference "
        f"{score_gap:.1e}); torch {t1 - t0:.1f} s, "
        f"ONNX Runtime {t2 - t1:.1f} s (load included)"
    )
    return 0 if worst <= args.tolerance and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
