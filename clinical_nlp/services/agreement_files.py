"""The `agree` service: read labels, write the agreement report (JSON, plot) and consensus spans."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from clinical_nlp.config import LabelSchema, load_label_schema
from clinical_nlp.consensus.adapters.text import agreement_report, consensus_relations, consensus_spans, read_labels
from clinical_nlp.io.jsonl import atomic_writer, write_rows


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: Path | str, data: Any) -> None:
    """Write JSON atomically (no partial file on error); NaN becomes null."""
    with atomic_writer(path) as fh:
        json.dump(_clean(data), fh, indent=2, sort_keys=False)
        fh.write("\n")


def plot_report(report: dict[str, Any], path: Path | str) -> None:
    """Bar chart: span F1 (exact/overlap) per label and attribute kappa / alpha."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(report["labels"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = range(len(labels))
    for k, mode in enumerate(("exact", "overlap")):
        vals = [report["labels"][lab].get(f"span_f1_{mode}") or 0.0 for lab in labels]
        axes[0].bar([i + k * 0.4 for i in x], vals, width=0.4, label=mode)
    axes[0].set_xticks([i + 0.2 for i in x], labels, rotation=45, ha="right")
    axes[0].set_ylim(0, 1)
    axes[0].set_title("span F1 between annotators (mean over pairs)")
    axes[0].legend()
    attrs = list(report["attributes"])
    for k, metric in enumerate(("cohen_kappa", "krippendorff_alpha")):
        vals = [report["attributes"][a].get(metric) or 0.0 for a in attrs]
        axes[1].bar([i + k * 0.4 for i in range(len(attrs))], vals, width=0.4, label=metric)
    axes[1].set_xticks([i + 0.2 for i in range(len(attrs))], attrs)
    axes[1].axhline(0.8, color="grey", linestyle="--", linewidth=1)
    axes[1].set_ylim(-0.2, 1)
    axes[1].set_title("attribute agreement (same boundaries)")
    axes[1].legend()
    fig.tight_layout()
    tmp = Path(str(path) + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def agree(
    input_path: Path | str,
    output_path: Path | str,
    *,
    plot: Path | str | None = None,
    n_boot: int = 200,
    seed: int = 0,
    gold: Path | str | None = None,
    method: str = "majority",
    schema: LabelSchema | None = None,
) -> dict[str, Any]:
    """Compute the agreement report of ``LABELS.jsonl`` and write it as JSON (and a PNG plot).

    With ``gold``, also write the consensus spans (one row per note: ``id``, ``text``, ``spans``), each with
    the attributes its label carries in ``schema`` (default: the shipped one), so the file can be ingested.
    """
    labels = read_labels(input_path)
    if gold is not None:
        schema = schema or load_label_schema()
        chosen = consensus_relations(labels, consensus_spans(labels, method=method))
        write_rows(
            gold,
            (
                {
                    "id": nid,
                    "text": labels.texts[nid],
                    "spans": [schema.without_foreign_attributes(sp).to_dict() for sp in chosen[nid][0]],
                    **({"relations": chosen[nid][1]} if chosen[nid][1] else {}),
                }
                for nid in sorted(chosen)
            ),
        )
    report = agreement_report(labels, n_boot=n_boot, seed=seed)
    report["input"] = Path(input_path).name
    write_json(output_path, report)
    if plot is not None:
        plot_report(report, plot)
    return report
