#!/usr/bin/env python
"""Our thin Doccano layer against doccano-client 1.2.8 on the calls a push and a pull make, same server, same run.

Both create the same spans on the same examples of a fresh project (span creation is
what dominates a push: about 9 per note and annotator), then list every example's
spans (what a pull reads). Each side runs ``--repeats`` times, alternating, on its own
examples; medians are compared. doccano-client keeps one cookie session (CSRF header,
no timeout, no retry), so it runs single-threaded; ours runs single-threaded too, and
with ``--threads`` sessions, as push does.

Target (printed, exit 1 when missed): our single-threaded layer is not slower than
doccano-client by more than 10% (``ours / client <= 1.10``). It decided the issue-13
question whether to adopt doccano-client (README, "Doccano round trip").

Usage: .venv/bin/python scripts/bench_doccano_client.py [--spans 400] [--repeats 3] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clinical_nlp import doccano as dc
from clinical_nlp.config import load_guideline

TARGET_RATIO = 1.10
TEXT = "No fever or chills. Cough since 2 days, treated with amoxicillin 500 mg. Mother has asthma. " * 3


def _spans(n_examples: int, per_example: int) -> list[tuple[int, int, int]]:
    """(example index, start, end) of non-overlapping 4-character spans."""
    return [(k, 5 * j, 5 * j + 4) for k in range(n_examples) for j in range(per_example)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=400, help="spans created per side and repeat")
    ap.add_argument("--per-example", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--output", default="artifacts/bench_doccano_client.json")
    args = ap.parse_args()
    try:
        from doccano_client import DoccanoClient
    except ImportError:
        print(
            "error: doccano-client is not a dependency (README, 'Why not doccano-client'); install it in a "
            "scratch environment: pip install doccano-client==1.2.8 'urllib3<2'",
            file=sys.stderr,
        )
        return 2

    creds = dc.DoccanoCredentials.from_env()
    server = dc.DoccanoServer(creds)
    guideline = load_guideline()
    name = f"bench-client-{uuid.uuid4().hex[:8]}"
    pid = server.sync_project(name, guideline, {})
    n_ex = max(1, args.spans // args.per_example)
    sides = ("ours", "ours_threads", "doccano_client")
    total = n_ex * len(sides) * args.repeats
    server.import_texts(pid, [(f"ex{k}", TEXT, ()) for k in range(total)])
    examples = sorted(server.examples_by_note(pid).items(), key=lambda kv: int(kv[0][2:]))
    ids = [eid for _, eid in examples]
    ours = dc.AnnotatorSession(creds.url, creds.admin_user, creds.admin_password, pid)
    label = ours.label_ids()["Condition"]
    client = DoccanoClient(creds.url)
    client.login(creds.admin_user, creds.admin_password)

    def run_ours(block: list[int], threads: int) -> float:
        jobs = [(block[k], a, b) for k, a, b in _spans(len(block), args.per_example)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda j: ours.add_span(j[0], j[1], j[2], "Condition"), jobs))
            listed = sum(len(x) for x in pool.map(ours.spans, block))
        assert listed == len(jobs), (listed, len(jobs))
        return time.perf_counter() - t0

    def run_client(block: list[int]) -> float:
        jobs = [(block[k], a, b) for k, a, b in _spans(len(block), args.per_example)]
        t0 = time.perf_counter()
        for eid, a, b in jobs:
            client.create_span(pid, eid, a, b, label)
        listed = sum(len(client.list_spans(pid, eid)) for eid in block)
        assert listed == len(jobs), (listed, len(jobs))
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {s: [] for s in sides}
    blocks = iter(ids[i : i + n_ex] for i in range(0, len(ids), n_ex))
    for r in range(args.repeats):
        order = sides if r % 2 == 0 else tuple(reversed(sides))
        for side in order:
            block = next(blocks)
            secs = (
                run_client(block)
                if side == "doccano_client"
                else run_ours(block, 1 if side == "ours" else args.threads)
            )
            times[side].append(secs)
            print(
                f"repeat {r + 1}/{args.repeats} {side}: {len(block) * args.per_example} spans in {secs:.2f}s",
                flush=True,
            )
    med = {s: statistics.median(v) for s, v in times.items()}
    ratio = med["ours"] / med["doccano_client"]
    result = {
        "spans_per_side": n_ex * args.per_example,
        "repeats": args.repeats,
        "median_seconds": {s: round(v, 3) for s, v in med.items()},
        "spans_per_second": {s: round(n_ex * args.per_example / v, 1) for s, v in med.items()},
        "ours_over_client": round(ratio, 3),
        "threads_speedup_over_client": round(med["doccano_client"] / med["ours_threads"], 2),
        "target": f"ours / doccano-client <= {TARGET_RATIO}",
        "met": ratio <= TARGET_RATIO,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    if not result["met"]:
        print(f"TARGET MISSED: ours is {ratio:.2f}x doccano-client's time", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
