#!/usr/bin/env python
"""Temporal-expression detection on Chia: P/R/F1 of our detector against Chia's ``Temporal`` spans.

Reads ``<shared corpora>/chia/{dev,train}.jsonl`` (or the bundled sample with
``--data``), runs :func:`clinical_nlp.pipeline.temporal.find_temporal` on each
document, and scores predicted spans against gold ``Temporal`` spans with
exact and overlap matching (clinical_nlp.metrics). Also reports the type
distribution of predictions and documents/s.

Writes ``<output>/bench_temporal.json`` and ``bench_temporal.png``.

Usage: python scripts/bench_temporal.py [--output artifacts] [--data FILE ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import Target, check_targets  # noqa: E402

from clinical_nlp.config import shared_corpora_dir
from clinical_nlp.io.jsonl import atomic_writer, iter_jsonl
from clinical_nlp.metrics import corpus_span_prf
from clinical_nlp.pipeline.temporal import find_temporal
from clinical_nlp.types import Span


def evaluate(path: Path) -> dict:
    docs = list(iter_jsonl(path, allow_empty=True, strict_text=False))
    gold = [[s for s in d.spans if s.label == "Temporal"] for d in docs]
    t0 = time.perf_counter()
    found = [find_temporal(d.text) for d in docs]
    secs = time.perf_counter() - t0
    pred = [[Span(t.start, t.end, "Temporal", t.text) for t in f] for f in found]
    out: dict = {
        "documents": len(docs),
        "gold_spans": sum(map(len, gold)),
        "pred_spans": sum(map(len, pred)),
        "docs_per_s": round(len(docs) / secs, 1) if secs else None,
    }
    for mode in ("exact", "overlap"):
        prf = corpus_span_prf(gold, pred, mode=mode, labels=["Temporal"])["__micro__"]
        out[mode] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in prf.as_dict().items()}
    out["types"] = dict(collections.Counter(t.type for f in found for t in f))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        type=Path,
        nargs="*",
        default=[shared_corpora_dir() / "chia" / "dev.jsonl", shared_corpora_dir() / "chia" / "train.jsonl"],
    )
    ap.add_argument("--output", type=Path, default=Path("artifacts"))
    args = ap.parse_args(argv)
    results = {p.parent.name + "/" + p.name: evaluate(p) for p in args.data}
    args.output.mkdir(parents=True, exist_ok=True)
    with atomic_writer(args.output / "bench_temporal.json") as fh:
        json.dump(results, fh, indent=2)
    print(json.dumps(results, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(results)
    metrics = [(m, k) for m in ("exact", "overlap") for k in ("precision", "recall", "f1")]
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        ax.bar(
            [j + i * width for j in range(len(metrics))], [results[name][m][k] for m, k in metrics], width, label=name
        )
    ax.set_xticks(
        [j + width * (len(names) - 1) / 2 for j in range(len(metrics))], [f"{m}\n{k}" for m, k in metrics], fontsize=7
    )
    ax.set_ylim(0, 1)
    ax.set_title("Chia Temporal detection")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_writer(args.output / "bench_temporal.png", "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    print(f"wrote {args.output / 'bench_temporal.json'} and {args.output / 'bench_temporal.png'}")
    # a regression floor under the reported 0.675 (Chia dev overlap F1; rules were written on Chia)
    return check_targets(
        [Target(f"{name} overlap recall", r["overlap"]["recall"], ">=", 0.80) for name, r in results.items()]
    )


if __name__ == "__main__":
    raise SystemExit(main())
