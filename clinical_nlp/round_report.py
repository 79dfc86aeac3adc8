"""A round's report: ``reports/round-NNN/report.json`` and its learning-curve plot."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clinical_nlp.config import Project
from clinical_nlp.io.jsonl import atomic_writer


def round_dir(project: Project, number: int) -> Path:
    path = Path(project.root) / project.config.reports_dir / f"round-{number:03d}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def strict_f1(metrics: Mapping[str, Any]) -> float | None:
    for key in ("strict", "exact"):
        block = metrics.get(key)
        if isinstance(block, Mapping):
            micro = block.get("micro", block.get("__micro__"))
            if isinstance(micro, Mapping) and "f1" in micro:
                return float(micro["f1"])
    return None


@dataclass
class CurvePoint:
    round: int
    n_docs: int
    edits: int
    edits_per_note: float
    f1: float | None
    agreement_span_f1: float | None = None
    adjudicated: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def learning_curve(round_infos: Sequence[Mapping[str, Any]]) -> list[CurvePoint]:
    """One point per finished step-'evaluated' round: cumulative docs and edits, dev F1."""
    points, docs, edits = [], 0, 0
    for info in round_infos:
        if "metrics" not in info:
            continue
        docs += len(info.get("batch", []))
        edits += int((info.get("edits") or {}).get("total", 0))
        overall = (info.get("agreement") or {}).get("overall") or {}
        points.append(
            CurvePoint(
                info["number"],
                docs,
                edits,
                float(info.get("edits_per_note") or 0.0),
                strict_f1(info["metrics"]),
                overall.get("span_f1_exact"),
                int(info.get("adjudicated") or 0),
            )
        )
    return points


def write_round_report(project: Project, info: Mapping[str, Any], round_infos: Sequence[Mapping[str, Any]]) -> str:
    """Write ``reports/round-NNN/report.json`` and ``learning_curve.png``; returns the JSON path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    number = int(info["number"])
    curve = learning_curve(round_infos)
    out = round_dir(project, number)
    report = {
        "round": number,
        "strategy": info.get("strategy"),
        "batch": info.get("batch"),
        "agreement": info.get("agreement"),
        #: notes where every annotator accepted the suggestions unchanged (agreement there measures them)
        "unchanged_suggestions": info.get("unchanged_suggestions"),
        "edits": info.get("edits"),
        "edits_per_note": info.get("edits_per_note"),
        "adjudicated": info.get("adjudicated"),
        "model_version": info.get("model_version"),
        "parent_model": info.get("parent_model"),
        "metrics": info.get("metrics"),
        "promotion": info.get("promotion"),
        "learning_curve": [asdict(p) for p in curve],
        "guideline_version": project.guideline().version,
    }
    with atomic_writer(out / "report.json") as fh:
        json.dump(report, fh, indent=2, default=str)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    xs = [p.n_docs for p in curve]
    ax[0].plot(xs, [p.f1 or 0.0 for p in curve], marker="o", label="dev strict F1")
    ax[0].plot(xs, [p.agreement_span_f1 or 0.0 for p in curve], marker="s", label="annotator span F1")
    ax[0].set_xlabel("labelled notes")
    ax[0].set_ylim(0, 1)
    ax[0].legend()
    ax[0].set_title("Learning curve")
    ax[1].bar([str(p.round) for p in curve], [p.edits_per_note for p in curve])
    ax[1].set_xlabel("round")
    ax[1].set_ylabel("edits per note (all annotators)")
    ax[1].set_title("Annotation cost")
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=100)
    plt.close(fig)
    return str(out / "report.json")
