#!/usr/bin/env python
"""Benchmark the Doccano round trip: push N pre-annotated notes to two annotators, pull back.

Notes are built from the bundled Chia and negex/ConText samples (real texts,
their gold spans as "pre-annotations", ConText attributes on the negex spans),
cycled with unique ids up to ``--notes``. Timed phases: push (import + every
annotator's pre-annotations in place), marking done as the annotators (not
counted in the target), pull. Needs the local server (scripts/doccano.sh start).
The engine logs in as itself only; the two benchmark people create their own accounts
(person side, like the demo) and mark their examples done with their own logins.

Usage: .venv/bin/python scripts/bench_doccano.py [--notes 1000] [--output artifacts/bench_doccano.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clinical_nlp import doccano as dc
from clinical_nlp.annotators import Annotator, Registry
from clinical_nlp.config import load_guideline, repo_root
from clinical_nlp.io.jsonl import row_to_annotated
from clinical_nlp.store import Store
from clinical_nlp.types import ATTRIBUTE_VALUES


def build_rows(n: int, labels: set[str]) -> list[dict]:
    corpora = repo_root() / "corpora"
    base = []
    for line in (corpora / "negex_context" / "sample.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        base.append(
            {
                "id": r["id"],
                "text": r["text"],
                "spans": [
                    {
                        "start": r["start"],
                        "end": r["end"],
                        "label": "Condition",
                        "negation": r["negation"],
                        # ConText's "not particular" temporality has no equivalent in our schema: left at the default
                        "temporality": r["temporality"]
                        if r["temporality"] in ATTRIBUTE_VALUES["temporality"]
                        else None,
                        "experiencer": r["experiencer"],
                        "score": 0.9,
                        "source": "context",
                    }
                ],
            }
        )
    for name in ("train.jsonl", "dev.jsonl"):
        for line in (corpora / "chia" / name).read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            spans = [
                {k: s[k] for k in ("start", "end", "label", "text")}
                for s in r["spans"]
                if s["label"] in labels and not s.get("fragments")
            ]  # Doccano: contiguous only
            base.append({"id": r["id"], "text": r["text"], "spans": spans})
    rows = []
    for i in range(n):
        r = base[i % len(base)]
        rows.append({**r, "id": f"{r['id']}#{i}", "deidentified": True, "model_version": "bench@1"})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=1000)
    ap.add_argument("--output", default="artifacts/bench_doccano.json")
    ap.add_argument("--threads", type=int, default=4, help="HTTP threads when reading back (pull, mark done)")
    args = ap.parse_args()

    guideline = load_guideline()
    rows = build_rows(args.notes, set(guideline.schema.label_names))
    docs = [(row_to_annotated(r).verified(), r) for r in rows]
    tag = uuid.uuid4().hex[:8]
    annotators = ["bench_ann1", "bench_ann2"]
    creds = dc.DoccanoCredentials.from_env()
    logins = {a: "bench-pw-1" for a in annotators}  # the people's own, never given to the engine
    server = dc.DoccanoServer(creds)
    for a in server.missing_users(annotators):
        server.create_user(a, logins[a])
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/state.db")
        for a in annotators:  # push assigns registered, qualified annotators only
            Registry(store).add(Annotator(a, license_id=f"BENCH-{a}", guideline_version=guideline.version))
        store.add_notes([d.note for d, _ in docs], deidentified=True, method="bench: public Chia criteria")
        name = f"bench-{tag}"
        t0 = time.perf_counter()
        report = dc.push(store, guideline, name, docs, annotators, overlap=2, creds=creds)
        t_push = time.perf_counter() - t0
        print(
            json.dumps(
                {
                    "phase": "push",
                    "seconds": round(t_push, 2),
                    "import_seconds": round(report.import_seconds, 2),
                    "spans_created": report.spans_created,
                }
            ),
            flush=True,
        )

        t0 = time.perf_counter()
        for a in annotators:
            s = dc.AnnotatorSession(creds.url, a, logins[a], report.project_ids[a])
            ids = [e["id"] for e in s.examples()]
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(s.mark_done, ids))
        t_done = time.perf_counter() - t0
        print(json.dumps({"phase": "mark_done", "seconds": round(t_done, 2)}), flush=True)

        t0 = time.perf_counter()
        pulled = dc.pull(store, guideline, name, annotators=annotators, creds=creds, threads=args.threads)
        t_pull = time.perf_counter() - t0
    n_spans = sum(len(dc.encode_spans(d.spans)) for d, _ in docs)
    ok = len(pulled) == 2 * len(docs) and all(r["edits"]["total"] == 0 for r in pulled)
    result = {
        "notes": len(docs),
        "annotators": len(annotators),
        "doccano_spans_per_annotator": n_spans,
        "spans_created": report.spans_created,
        "push_seconds": round(t_push, 2),
        "mark_done_seconds": round(t_done, 2),
        "pull_seconds": round(t_pull, 2),
        "push_plus_pull_seconds": round(t_push + t_pull, 2),
        "import_seconds": round(report.import_seconds, 2),
        "pulled_rows": len(pulled),
        "roundtrip_lossless": ok,
        "target_seconds": 60,
        "pull_threads": args.threads,
    }
    result["met"] = ok and t_push + t_pull <= result["target_seconds"]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    if not ok:
        print("TARGET MISSED: the round trip lost or changed spans", file=sys.stderr)
    elif not result["met"]:
        print(f"TARGET MISSED: push + pull took {t_push + t_pull:.1f}s > {result['target_seconds']}s", file=sys.stderr)
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
