#!/usr/bin/env python
"""Run one benchmark at an earlier commit and on the working tree, alternating, and compare a metric.

A behaviour-preserving refactoring must not be slower: this runs ``--script`` from a
temporary git worktree of ``--ref`` (its own package, guidelines and script) and from the
working tree, ``--repeats`` times each in alternating order, reads ``--metric`` from the JSON
file each run writes (``--output`` is passed to it), and compares the medians.

Target (printed, exit 1 when missed): ``working tree / ref <= --max-ratio``.

Example (issue 13: Doccano push + pull of 1,000 notes within 10% of before the refactoring)::

    .venv/bin/python scripts/bench_compare_ref.py --ref ae3d898 --script scripts/bench_doccano.py \\
        --metric push_plus_pull_seconds --max-ratio 1.10 --repeats 2 -- --notes 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(root: Path, script: str, extra: list[str], out: Path) -> float | None:
    env = dict(os.environ, PYTHONPATH=str(root))
    cmd = [sys.executable, str(root / script), *extra, "--output", str(out)]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    if not out.exists():
        print(proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(out.read_text(encoding="utf-8"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="the earlier commit (e.g. the one before a refactoring)")
    ap.add_argument("--script", required=True, help="benchmark script path, relative to the repository")
    ap.add_argument("--metric", required=True, help="key of the JSON result to compare (lower is better)")
    ap.add_argument("--max-ratio", type=float, default=1.10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--output", default="artifacts/bench_compare_ref.json")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="arguments after -- go to the benchmark")
    args = ap.parse_args()
    extra = [a for a in args.extra if a != "--"]
    values: dict[str, list[float]] = {"ref": [], "tree": []}
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "ref"
        added = subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), args.ref],
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            print(f"error: cannot check out {args.ref!r}: {added.stderr.strip()}", file=sys.stderr)
            return 2
        try:
            for r in range(args.repeats):
                order = ("ref", "tree") if r % 2 == 0 else ("tree", "ref")
                for side in order:
                    root = worktree if side == "ref" else REPO
                    result = _run(root, args.script, extra, Path(tmp) / f"{side}-{r}.json")
                    if result is None or args.metric not in result:
                        print(f"error: the {side} run wrote no {args.metric!r}", file=sys.stderr)
                        return 2
                    values[side].append(float(result[args.metric]))
                    print(f"repeat {r + 1}/{args.repeats} {side}: {args.metric} = {result[args.metric]}", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                capture_output=True,
                check=False,
            )
    med = {k: statistics.median(v) for k, v in values.items()}
    ratio = med["tree"] / med["ref"]
    summary = {
        "ref": args.ref,
        "script": args.script,
        "metric": args.metric,
        "values": values,
        "median": med,
        "tree_over_ref": round(ratio, 3),
        "target": f"tree / ref <= {args.max_ratio}",
        "met": ratio <= args.max_ratio,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    if not summary["met"]:
        print(f"TARGET MISSED: {ratio:.3f} > {args.max_ratio}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
