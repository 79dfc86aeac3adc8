"""Benchmark: the default pipeline on one long note against the same text as its separate notes.

A discharge summary or a pasted record can be hundreds of thousands of characters; the cost of a
note must grow with its length, not its square (medspaCy's TargetMatcher added each match to
``doc.ents`` one at a time: 60 s for a 500,000-character note whose 120 parts took 4 s). Same
run, same text, same pipeline: ``--notes`` MTSamples notes from the shared corpora (internal
benchmarking only), pre-annotated separately and joined by blank lines into one note; best of
``--repeat`` passes each, after the pipeline is built. Target: the long note at most
``--max-ratio`` times the separate notes' time (exit 1 when missed). Writes JSON.

Usage: python scripts/bench_long_note.py --notes 120 --out bench_out/long_note
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clinical_nlp.config import shared_corpora_dir  # noqa: E402
from clinical_nlp.models.default_entities import default_entity_model_dir  # noqa: E402
from clinical_nlp.pipeline import pipeline_version, preannotate  # noqa: E402
from clinical_nlp.scale import get_pipeline  # noqa: E402
from clinical_nlp.types import Note  # noqa: E402


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--max-ratio", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=Path("bench_out/long_note"))
    args = ap.parse_args()
    rows = []
    with (shared_corpora_dir() / "mtsamples" / "notes.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if (row.get("text") or "").strip():
                rows.append(Note(row["id"], row["text"]))
            if len(rows) >= args.notes:
                break
    long_note = Note("long", "\n\n".join(n.text for n in rows))
    model = default_entity_model_dir()  # the default pipeline of `clinical-nlp preannotate`: the shipped model
    nlp = get_pipeline(str(model) if model else None)
    list(preannotate(rows[:2], nlp))  # warm: the model and its caches are loaded once
    separate = _best(lambda: list(preannotate(rows, nlp)), args.repeat)
    together = _best(lambda: list(preannotate([long_note], nlp)), args.repeat)
    (doc,) = preannotate([long_note], nlp)
    spans_separate = sum(len(d.spans) for d in preannotate(rows, nlp))
    ratio = together / separate
    met = ratio <= args.max_ratio
    result = {
        "notes": len(rows),
        "characters": len(long_note.text),
        "separate_s": round(separate, 2),
        "one_note_s": round(together, 2),
        "ratio": round(ratio, 2),
        "pipeline": pipeline_version(nlp),
        "target_max_ratio": args.max_ratio,
        "met": met,
        "spans_one_note": len(doc.spans),
        "spans_separate": spans_separate,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_long_note.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"{len(long_note.text):,} characters as one note: {together:.1f} s; as {len(rows)} notes: {separate:.1f} s "
        f"(ratio {ratio:.2f}, target <= {args.max_ratio}: {'met' if met else 'MISSED'})"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
