"""``clinical-nlp round start|status|finish``: active-learning rounds over Doccano."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clinical_nlp.cli.names import name_list
from clinical_nlp.config import current_actor
from clinical_nlp.errors import InputFormatError


def register(app: typer.Typer) -> None:
    rounds_app = typer.Typer(
        help="Active-learning rounds: select, pre-annotate, push; then pull, "
        "consensus, retrain, evaluate, report. Resumable after a crash.",
        no_args_is_help=True,
    )
    app.add_typer(rounds_app, name="round")

    @rounds_app.command("start")
    def start_cmd(
        project_dir: Path | None = typer.Option(None, "--project-dir", help="Project folder (default: cwd)."),
        strategy: str = typer.Option(
            "entropy",
            help="Query strategy (see 'clinical-nlp al strategies'); "
            "the first round, without a model, samples at random.",
        ),
        batch: int = typer.Option(10, help="Notes per round."),
        annotators: str = typer.Option(..., help="Comma-separated Doccano usernames."),
        overlap: int = typer.Option(2, help="Annotators per note (all for safety-critical labels)."),
        expert: str = typer.Option("expert", help="Adjudicator username."),
        doccano_project: str = typer.Option(None, help="Doccano project name (default: the project's)."),
        seed: int = typer.Option(0),
        relations: bool = typer.Option(
            False, "--relations", help="Also suggest links between the spans (the shipped relation model)."
        ),
    ) -> None:
        """Select a batch from the project's unlabelled notes, pre-annotate it with the current model
        and push it to Doccano (each annotator gets their own pre-annotations).

        Input: notes in the project store ('clinical-nlp ingest'). Output: the round's state in the
        store; credentials from DOCCANO_* environment variables.
        """
        from clinical_nlp.project import resolve_project
        from clinical_nlp.rounds import RoundSettings, start_round

        project = resolve_project(project_dir)
        settings = RoundSettings(
            strategy=strategy,
            batch=batch,
            annotators=tuple(name_list(annotators, "--annotators")),
            overlap=overlap,
            expert=expert,
            doccano_project=doccano_project or project.config.doccano.project,
            seed=seed,
            relations=relations,
        )
        from clinical_nlp.doccano import DoccanoCredentials, annotator_project_name

        info = start_round(project, settings, actor=current_actor(), progress=True)
        url = DoccanoCredentials.from_env().url
        typer.echo(
            f"round {info['number']}: {len(info['batch'])} de-identified notes selected ({info['strategy']}), "
            f"pre-annotated ({info.get('pre_spans', 0)} suggestions) and pushed to Doccano"
        )
        if held := info.get("held_back"):
            typer.echo(
                "not selectable yet: "
                + ", ".join(f"{n} note(s) with {why}" for why, n in held.items())
                + " ('clinical-nlp deid --project-dir', 'clinical-nlp deid-review list / decide')"
            )
        typer.echo("what each person does now:")
        for who, pid in sorted(info["doccano_project_ids"].items()):
            n = len(info["assignments"].get(who, []))
            typer.echo(
                f"  {who}: open {url}/projects/{pid} ({annotator_project_name(settings.doccano_project, who)}), "
                f"{n} note(s): 'Start Annotation', correct the suggestions (right-click a wrong one to delete it, "
                "select text to add one, NEG/POSS/HIST/HYPO/FAM/OTHER on the same text for attributes), "
                "then mark each done (Enter)"
            )
        typer.echo(
            "then: 'clinical-nlp round status' shows each person's progress; "
            "'clinical-nlp round finish --dev DEV.jsonl' pulls, agrees and routes what needs the expert"
        )

    @rounds_app.command("status")
    def status_cmd(
        project_dir: Path | None = typer.Option(None, "--project-dir"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Rounds so far (state, notes, strategy, dev F1) and, for the open round, each annotator's progress
        read from Doccano: done / assigned and last activity."""
        from clinical_nlp.project import resolve_project
        from clinical_nlp.rounds import round_status

        st = round_status(resolve_project(project_dir))
        if as_json:
            typer.echo(json.dumps(st, indent=2, default=str))
            return
        for r in st["rounds"]:
            f1 = "" if r["f1"] is None else f", dev strict F1 {r['f1']:.3f}"
            typer.echo(f"round {r['number']}: {r['state']}, {r['notes']} notes ({r['strategy']}){f1}")
        for who, d in sorted(((st.get("doccano") or {}).get("annotators") or {}).items()):
            last = d.get("last_activity") or "no activity yet"
            typer.echo(f"  {who}: {d['done']}/{d['assigned']} done, last activity {last}, {d['link']}")
        if not st["rounds"]:
            typer.echo("no round yet: clinical-nlp round start --annotators A,B")

    @rounds_app.command("finish")
    def finish_cmd(
        dev: Path = typer.Option(..., help="Fixed evaluation set (JSONL with gold spans)."),
        decisions: Path | None = typer.Option(
            None,
            help="JSONL of expert decisions for queued notes: {id, spans, reason}. Without it (or for notes "
            "it lacks), queued notes go to the expert's Doccano adjudication project and the round stops "
            "until she has marked them done there; run finish again.",
        ),
        project_dir: Path | None = typer.Option(None, "--project-dir"),
    ) -> None:
        """Pull the corrections, compute agreement, build gold (consensus or the expert's decision),
        retrain the fast model, evaluate on DEV and write reports/round-NNN/report.json + plot."""
        from clinical_nlp.io.jsonl import iter_json_rows, read_jsonl
        from clinical_nlp.project import resolve_project
        from clinical_nlp.rounds import finish_round
        from clinical_nlp.types import Span

        given: dict[str, tuple[list[Span], str]] = {}
        if decisions is not None:
            for line, row in iter_json_rows(decisions):
                if "id" not in row or "reason" not in row:
                    raise InputFormatError(
                        "decision rows need 'id', 'spans' and 'reason'", source=str(decisions), line=line
                    )
                given[str(row["id"])] = ([Span.from_dict(s) for s in row.get("spans", [])], str(row["reason"]))

        def decide(note, _by_annotator, reasons):
            return given.get(note.id)  # None: she decides in her Doccano adjudication project

        info = finish_round(
            resolve_project(project_dir),
            expert_decision=decide,
            dev=read_jsonl(dev),
            actor=current_actor(),
            progress=True,
        )
        typer.echo(f"round {info['number']} done: report {info['report']}")
        warning = (info.get("unchanged_suggestions") or {}).get("warning")
        if warning:
            typer.echo(f"warning: {warning}", err=True)
        still = info.get("open") or {}
        expert = info["settings"]["expert"]
        if still.get("qa_reviews"):
            typer.echo(
                f"still open: {still['qa_reviews']} QA review(s) (clinical-nlp qa todo); send them to the reviewer "
                f"with 'clinical-nlp qa push --reviewer {expert}', then 'clinical-nlp qa pull --reviewer {expert}'"
            )
        if still.get("adjudications"):
            typer.echo(f"still open: {still['adjudications']} adjudication(s) (clinical-nlp adjudicate list)")
        if not any(still.values()):
            typer.echo("nothing open: export is allowed (clinical-nlp export)")
