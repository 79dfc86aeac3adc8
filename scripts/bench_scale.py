"""Benchmark: notes/s of the full default pipeline on 1 and 2 Dask workers vs medspaCy's default pipeline.

Same notes, same run. Notes: MTSamples from the shared corpora (internal benchmarking only;
never copied into the repo), N notes of about 4,000 characters (longer notes cut at a
whitespace near 4,000, shorter ones skipped). Also the peak RSS of the whole process tree
(client + Dask workers, psutil sampling) while pre-annotating ``--memory-notes`` notes
(the bundled notes repeated; ``--memory-notes 0`` skips it). Also our pipeline in this
process without Dask (like-for-like with medspaCy); both in-process peers are timed as the best of
``--repeat`` passes over the same notes after their pipeline is built (one pass varied by about
±0.15 in the ratio). Writes JSON + a PNG plot.

Usage:
    nice -n 10 python scripts/bench_scale.py --notes 300 --memory-notes 100000 --out bench_out/scale
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil

from clinical_nlp.config import shared_corpora_dir
from clinical_nlp.scale import preannotate_file


def load_notes(n: int, target: int = 4000) -> list[dict]:
    rows = []
    with (shared_corpora_dir() / "mtsamples" / "notes.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            text = r.get("text") or ""
            if len(text) < target * 0.9:
                continue
            cut = text.rfind(" ", 0, target)
            rows.append({"id": r["id"], "text": text[: cut if cut > target * 0.9 else target]})
            if len(rows) >= n:
                break
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} MTSamples notes of about {target} characters")
    return rows


class TreeRSS:
    """Samples the RSS of this process and all its children every ``interval`` seconds."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def best_rate(n: int, run, repeat: int) -> float:
    """Items per second of the fastest of ``repeat`` calls of ``run`` (each over ``n`` items)."""
    best = float("inf")
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return n / best


def run_medspacy(rows: list[dict], repeat: int = 1) -> float:
    import medspacy
    from loguru import logger

    logger.disable("PyRuSH")  # its DEBUG line per sentence start would slow the peer down (our pipeline does too)

    nlp = medspacy.load()  # default: PyRuSH sentences, target matcher, ConText, sectionizer
    if "medspacy_sectionizer" not in nlp.pipe_names:
        nlp.add_pipe("medspacy_sectionizer")
    return best_rate(len(rows), lambda: [None for _ in nlp.pipe(r["text"] for r in rows)], repeat)


def run_ours_inprocess(rows: list[dict], context: str = "cascade", model: bool = False, repeat: int = 1) -> float:
    """Our pipeline in this process (no Dask): the like-for-like peer of :func:`run_medspacy`.

    ``model``: with the shipped entity model (what ``preannotate`` runs by default), else rules only.
    """
    from clinical_nlp.pipeline import build_pipeline, preannotate
    from clinical_nlp.types import Note

    nlp = build_pipeline(context=context, use_default_model=model)
    notes = [Note(r["id"], r["text"]) for r in rows]
    return best_rate(len(notes), lambda: sum(1 for _ in preannotate(notes, nlp)), repeat)


def run_ours(path: Path, out: Path, workers: int, partition_size: int) -> tuple[float, float | None]:
    # warm-up run builds the pipeline in each worker process is part of the cost of a cluster;
    # we time the whole call (cluster start + pipeline build + processing) as a user sees it.
    t0 = time.perf_counter()
    stats = preannotate_file(path, out, workers=workers, partition_size=partition_size, progress=False)
    dt = time.perf_counter() - t0
    assert stats.notes == sum(1 for _ in path.open())
    return stats.notes / dt, stats.steady_notes_per_s()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=300)
    ap.add_argument("--memory-notes", type=int, default=100_000)
    ap.add_argument("--partition-size", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3, help="in-process timings: best of N passes (both peers)")
    ap.add_argument("--out", type=Path, default=Path("bench_out/scale"))
    ap.add_argument(
        "--with-medspacy-context",
        action="store_true",
        help="also time our pipeline with context='medspacy' (PyRuSH + ConText, the pre-0.2 layout)",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = load_notes(args.notes)
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    path = tmp / "notes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result: dict = {
        "notes": len(rows),
        "mean_chars": sum(len(r["text"]) for r in rows) / len(rows),
        "cpus": os.cpu_count(),
        "partition_size": args.partition_size,
    }
    result["repeat"] = args.repeat
    result["medspacy_notes_per_s"] = run_medspacy(rows, args.repeat)
    print("medspacy", result["medspacy_notes_per_s"], flush=True)
    result["ours_inprocess_notes_per_s"] = run_ours_inprocess(rows, repeat=args.repeat)
    result["ratio_inprocess_vs_medspacy"] = result["ours_inprocess_notes_per_s"] / result["medspacy_notes_per_s"]
    print(
        f"ours in-process {result['ours_inprocess_notes_per_s']:.2f} "
        f"({result['ratio_inprocess_vs_medspacy']:.2f}x medspaCy)",
        flush=True,
    )
    result["ours_inprocess_with_model_notes_per_s"] = run_ours_inprocess(rows, model=True, repeat=args.repeat)
    result["ratio_inprocess_with_model_vs_medspacy"] = (
        result["ours_inprocess_with_model_notes_per_s"] / result["medspacy_notes_per_s"]
    )
    print(
        f"ours in-process with the shipped entity model {result['ours_inprocess_with_model_notes_per_s']:.2f} "
        f"({result['ratio_inprocess_with_model_vs_medspacy']:.2f}x medspaCy)",
        flush=True,
    )
    if args.with_medspacy_context:
        result["ours_inprocess_context_medspacy_notes_per_s"] = run_ours_inprocess(rows, "medspacy")
    for w in (1, 2):
        e2e, steady = run_ours(path, tmp / f"out{w}.jsonl", w, args.partition_size)
        result[f"ours_{w}w_end_to_end_notes_per_s"] = e2e  # incl. cluster start + pipeline build
        result[f"ours_{w}w_notes_per_s"] = steady  # after the first partition
        print(f"ours {w} worker(s): end-to-end {e2e:.2f}, steady {steady}", flush=True)
    result["ratio_1w_vs_medspacy"] = result["ours_1w_notes_per_s"] / result["medspacy_notes_per_s"]
    result["ratio_2w_vs_medspacy"] = result["ours_2w_notes_per_s"] / result["medspacy_notes_per_s"]
    result["ratio_2w_vs_1w"] = result["ours_2w_notes_per_s"] / result["ours_1w_notes_per_s"]
    result["load_average"] = os.getloadavg()
    if args.memory_notes:
        big = tmp / "big.jsonl"
        with big.open("w") as fh:
            for i in range(args.memory_notes):
                r = rows[i % len(rows)]
                fh.write(json.dumps({"id": f"{r['id']}-{i}", "text": r["text"]}) + "\n")
        with TreeRSS() as mon:
            t0 = time.perf_counter()
            preannotate_file(big, tmp / "big_out.jsonl", workers=2, partition_size=args.partition_size, progress=False)
            result["memory_run_seconds"] = time.perf_counter() - t0
        result["memory_notes"] = args.memory_notes
        result["peak_rss_tree_mb"] = mon.peak / 2**20
    (args.out / "bench_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = ["medSpaCy default", "ours rules", "ours + model", "ours 1 worker", "ours 2 workers"]
        vals = [
            result["medspacy_notes_per_s"],
            result["ours_inprocess_notes_per_s"],
            result["ours_inprocess_with_model_notes_per_s"],
            result["ours_1w_notes_per_s"],
            result["ours_2w_notes_per_s"],
        ]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(names, vals, color=["grey", "tab:cyan", "tab:olive", "tab:blue", "tab:green"])
        ax.tick_params(axis="x", labelsize=7)
        ax.set_ylabel("notes / s")
        ax.set_title(f"{len(rows)} MTSamples notes (~{int(result['mean_chars'])} chars)")
        fig.tight_layout()
        fig.savefig(args.out / "bench_scale.png", dpi=120)
    except ImportError:
        pass
    print(json.dumps(result, indent=2))
    from targets import Target, check_targets

    return check_targets(
        [
            Target(
                "default pipeline with the shipped model vs medspaCy (in-process notes/s)",
                round(result["ratio_inprocess_with_model_vs_medspacy"], 2),
                ">=",
                2.0,
            ),
            Target("2 Dask workers vs 1 (steady notes/s)", round(result["ratio_2w_vs_1w"], 2), ">=", 1.5),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
