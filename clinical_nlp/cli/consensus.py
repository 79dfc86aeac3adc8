"""Consensus commands: ``agree``, ``adjudicate``, ``consensus imaging``, ``consensus signal``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from clinical_nlp.errors import InputFormatError


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"Agreement: {len(report['annotators'])} annotators, {report['notes']} notes")
    for col in ("label", "span F1 exact", "span F1 overlap"):
        t.add_column(col)
    t.add_row("(all, micro)", _fmt(report["overall"]["span_f1_exact"]), _fmt(report["overall"]["span_f1_overlap"]))
    for lab, d in report["labels"].items():
        t.add_row(lab, _fmt(d.get("span_f1_exact")), _fmt(d.get("span_f1_overlap")))
    console.print(t)
    a = Table(title="Attribute agreement (spans with the same boundaries)")
    for col in ("attribute", "n", "Cohen kappa", "Krippendorff alpha", "note"):
        a.add_column(col)
    for name, d in report["attributes"].items():
        a.add_row(name, str(d.get("n", 0)), _fmt(d.get("cohen_kappa")), _fmt(d.get("krippendorff_alpha")),
                  d.get("cohen_kappa_reason") or "")
    console.print(a)


def register(app: typer.Typer) -> None:
    @app.command("agree")
    def agree_cmd(
        input: Path = typer.Option(..., "--input", "-i", help="LABELS.jsonl from `clinical-nlp doccano pull` "
                                   "(one row per note and annotator: id, annotator, text, spans)."),
        output: Path = typer.Option(..., "--output", "-o", help="REPORT.json to write."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Also write a PNG bar chart here."),
        n_boot: int = typer.Option(200, help="Bootstrap resamples for confidence intervals (0: none)."),
        seed: int = typer.Option(0, help="Bootstrap seed."),
    ) -> None:
        """Inter-annotator agreement of a pulled Doccano export.

        Output REPORT.json: overall span F1 (exact and overlap; micro over the corpus per annotator
        pair, averaged over pairs), per-label span F1, per-pair P/R/F1, label agreement on aligned
        units, and Cohen's kappa / Krippendorff's alpha per attribute (negation, temporality,
        experiencer) over spans both annotators marked with the same boundaries. Undefined figures
        are null with a reason. Prints the tables in the terminal.
        """
        from clinical_nlp.consensus.report import agree

        report = agree(input, output, plot=plot, n_boot=n_boot, seed=seed)
        _print_report(report)
        typer.echo(f"wrote {output}" + (f" and {plot}" if plot else ""))

    adj = typer.Typer(help="Adjudication queue: items below the agreement bars or with safety-critical labels.",
                      no_args_is_help=True)
    app.add_typer(adj, name="adjudicate")

    @adj.command("queue")
    def adj_queue(
        input: Path = typer.Option(..., "--input", "-i", help="LABELS.jsonl (pulled annotations)."),
        expert: str = typer.Option(..., help="Expert (annotator name) who adjudicates these items."),
        project: Optional[Path] = typer.Option(None, help="Project folder (default: ./.clinical-nlp scratch)."),
    ) -> None:
        """Queue the notes of LABELS.jsonl whose pairwise span F1 or attribute kappa is below the label
        schema's bars, or that carry a safety-critical label; store them in the project store."""
        from clinical_nlp.consensus.adapters.text import read_labels, text_candidates
        from clinical_nlp.consensus.adjudication import build_queue
        from clinical_nlp.project import resolve_project
        from clinical_nlp.store import Store

        proj = resolve_project(project)
        labels = read_labels(input)
        n = build_queue(Store(proj.store_url), text_candidates(labels), expert=expert,
                        schema=proj.guideline().schema)
        typer.echo(f"{n} item(s) pending adjudication by {expert}")

    @adj.command("list")
    def adj_list(
        expert: Optional[str] = typer.Option(None, help="Only this expert's items."),
        project: Optional[Path] = typer.Option(None, help="Project folder (default: ./.clinical-nlp scratch)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List pending adjudication items (item, unit, reasons, assigned expert)."""
        from rich.console import Console
        from rich.table import Table

        from clinical_nlp.consensus.adjudication import pending
        from clinical_nlp.project import resolve_project
        from clinical_nlp.store import Store

        rows = pending(Store(resolve_project(project).store_url), expert=expert)
        if as_json:
            typer.echo(json.dumps([r.__dict__ for r in rows], indent=2))
            return
        t = Table(title=f"{len(rows)} pending")
        for col in ("item", "unit", "modality", "expert", "reasons"):
            t.add_column(col)
        for r in rows:
            t.add_row(r.item, r.unit, r.modality, r.expert or "", "; ".join(r.reasons))
        Console().print(t)

    @adj.command("decide")
    def adj_decide(
        item: str = typer.Option(..., help="Queued item id."),
        expert: str = typer.Option(..., help="Expert recording the decision."),
        reason: str = typer.Option(..., help="Why (kept with the gold label and in the audit log)."),
        decision: str = typer.Option(..., help="Gold payload as JSON (text: a list of spans "
                                     "[{start, end, label, negation...}]) or @FILE with that JSON."),
        unit: str = typer.Option("*", help="Queued unit ('*' = whole item)."),
        project: Optional[Path] = typer.Option(None, help="Project folder (default: ./.clinical-nlp scratch)."),
    ) -> None:
        """Record an expert decision: it becomes gold (kind="gold") with who and why, plus an audit entry."""
        from clinical_nlp.consensus.adjudication import decide
        from clinical_nlp.project import resolve_project
        from clinical_nlp.store import Store

        raw = Path(decision[1:]).read_text(encoding="utf-8") if decision.startswith("@") else decision
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"--decision is not valid JSON: {exc.msg} (column {exc.colno})") from None
        entry = decide(Store(resolve_project(project).store_url), item, unit, payload, expert, reason)
        typer.echo(f"decided {entry.item}/{entry.unit} by {expert}: stored as gold")
