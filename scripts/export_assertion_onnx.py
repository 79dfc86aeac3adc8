#!/usr/bin/env python
"""Export the MiniLM assertion model's graph for ONNX Runtime and check it against torch.

Writes ``graph.onnx`` (weights as named inputs, fed at load time from the packaged MiniLM and the
shipped top; :mod:`clinical_nlp.models.assertion_onnx`) into the model directory, records its hash
in ``meta.json``, then compares both runtimes' logits on the NegEx/ConText dev rows (every row:
no labels are read, so no split is involved). Exits 1 if any logit differs by more than
``--tolerance``.

Usage: python scripts/export_assertion_onnx.py [--model DIR] [--rows N] [--tolerance 1e-3]
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
from clinical_nlp.models.assertion_onnx import OnnxAssertionModel, export_graph
from clinical_nlp.models.assertion_transformer import CLASSES, DEFAULT_TRANSFORMER_DIR, TransformerAssertionModel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_TRANSFORMER_DIR)
    ap.add_argument("--data", type=Path, default=shared_corpora_dir() / "negex_context" / "dev.jsonl")
    ap.add_argument("--rows", type=int, default=0, help="compare on the first N rows (0: all)")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args(argv)
    torch_model = TransformerAssertionModel.load(args.model)
    digest = export_graph(torch_model, args.model)
    print(f"wrote {args.model / 'graph.onnx'} ({(args.model / 'graph.onnx').stat().st_size / 1e3:.0f} kB, {digest})")
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = rows[: args.rows] if args.rows else rows
    triples = [(r["text"], int(r["start"]), int(r["end"])) for r in rows]
    t0 = time.perf_counter()
    ref = torch_model.logits(triples)
    t1 = time.perf_counter()
    got = OnnxAssertionModel.load(args.model).logits(triples)
    t2 = time.perf_counter()
    worst = max(float(np.abs(ref[a] - got[a]).max()) for a in CLASSES)
    same = all((ref[a].argmax(1) == got[a].argmax(1)).all() for a in CLASSES)
    print(
        f"{len(triples)} rows: largest logit difference {worst:.2e} (tolerance {args.tolerance:g}), "
        f"same argmax everywhere: {same}; torch {t1 - t0:.2f} s, ONNX Runtime {t2 - t1:.2f} s (load included)"
    )
    return 0 if worst <= args.tolerance and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
