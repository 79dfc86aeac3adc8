"""``clinical-nlp round start|status|finish``: active-learning rounds over Doccano."""

from __future__ import annotations

import json
from pathlib import Path

import typer

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
            annotators=tuple(a.strip() for a in annotators.split(",") if a.strip()),
            overlap=overlap,
            expert=expert,
            doccano_project=doccano_project or project.config.doccano.project,
            seed=seed,
        )
        info = start_round(project, settings, actor=current_actor(), progress=True)
        typer.echo(
            f"round {info['number']}: pushed {len(info['batch'])} notes ({info['strategy']}) to "
            f"Doccano project {settings.doccano_project!r}"
        )

    @rounds_app.command("status")
    def status_cmd(project_dir: Path | None = typer.Option(None, "--project-dir")) -> None:
        """Rounds so far (state, notes, strategy, dev F1) and Doccano progress of the open round (JSON)."""
        from clinical_nlp.project import resolve_project
        from clinical_nlp.rounds import round_status

        typer.echo(json.dumps(round_status(resolve_project(project_dir)), indent=2, default=str))

    @rounds_app.command("finish")
    def finish_cmd(
        dev: Path = typer.Option(..., help="Fixed evaluation set (JSONL with gold spans)."),
        decisions: Path | None = typer.Option(
            None,
            help="JSONL of expert decisions for queued notes: {id, spans, reason}. Without it, "
            "the round stops at the adjudication step if any note is queued.",
        ),
        project_dir: Path | None = typer.Option(None, "--project-dir"),
    ) -> None:
        """Pull the corrections, compute agreement, build gold (consensus or the expert's decision),
        retrain the fast model, evaluate on DEV and write reports/round-NNN/report.json + plot."""
        from clinical_nlp.io.jsonl import iter_json_rows, read_jsonl
        from clinical_nlp.project import resolve_project
        from clinical_nlp.rounds import RoundError, finish_round
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
            if note.id not in given:
                raise RoundError(
                    f"note {note.id!r} is queued for adjudication ({'; '.join(reasons)}); "
                    "give its decision with --decisions"
                )
            return given[note.id]

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
