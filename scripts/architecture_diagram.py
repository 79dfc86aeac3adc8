#!/usr/bin/env python
"""Draw docs/architecture.png from docs/architecture.yaml: the layers (bottom up) and one round's data flow.

Usage: .venv/bin/python scripts/architecture_diagram.py [--output docs/architecture.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def draw(spec: dict, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    layers, flow = spec["layers"], spec["flow"]
    fig, (ax_layers, ax_flow) = plt.subplots(1, 2, figsize=(15, 7), gridspec_kw={"width_ratios": [1.1, 1]})
    for ax in (ax_layers, ax_flow):
        ax.set_axis_off()
    ax_layers.set_xlim(0, 1)
    ax_layers.set_ylim(0, len(layers))
    ax_layers.set_title("Layers: a module imports only its own layer and those below", fontsize=11)
    colours = plt.get_cmap("Pastel1")
    for k, layer in enumerate(layers):
        box = FancyBboxPatch(
            (0.02, k + 0.08), 0.96, 0.84, boxstyle="round,pad=0.01", facecolor=colours(k % 9), edgecolor="#555555"
        )
        ax_layers.add_patch(box)
        ax_layers.text(0.05, k + 0.62, layer["name"], fontsize=11, fontweight="bold", va="center")
        ax_layers.text(0.05, k + 0.32, layer["what"], fontsize=8, va="center", color="#333333")
        ax_layers.text(
            0.97, k + 0.62, "  ".join(layer["modules"]), fontsize=8.5, va="center", ha="right", family="monospace"
        )
    ax_flow.set_xlim(0, 1)
    ax_flow.set_ylim(0, len(flow))
    ax_flow.set_title("One round's data flow (step: where it lives)", fontsize=11)
    for k, (step, where) in enumerate(flow):
        y = len(flow) - k - 0.5
        ax_flow.add_patch(
            FancyBboxPatch(
                (0.05, y - 0.33), 0.9, 0.66, boxstyle="round,pad=0.01", facecolor="#eef3fb", edgecolor="#4a6fa5"
            )
        )
        ax_flow.text(0.09, y, step, fontsize=9.5, va="center", fontweight="bold")
        ax_flow.text(0.92, y, where, fontsize=8.5, va="center", ha="right", family="monospace", color="#333333")
        if k + 1 < len(flow):
            ax_flow.add_patch(
                FancyArrowPatch((0.5, y - 0.34), (0.5, y - 0.66), arrowstyle="-|>", mutation_scale=10, color="#4a6fa5")
            )
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=REPO / "docs" / "architecture.yaml")
    ap.add_argument("--output", type=Path, default=REPO / "docs" / "architecture.png")
    args = ap.parse_args()
    draw(yaml.safe_load(args.source.read_text(encoding="utf-8")), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
