"""Doccano commands: ``doccano sync|push|pull|status`` (thin wrappers over clinical_nlp.doccano).

Credentials come from the environment (DOCCANO_URL, DOCCANO_ADMIN_USER,
DOCCANO_ADMIN_PASSWORD, DOCCANO_USER_PASSWORDS) or DOCCANO_CREDENTIALS_FILE,
never from options.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clinical_nlp.config import current_actor

_PROJECT_HELP = "Doccano project name (default: doccano.project of the project's clinical-nlp.yaml)."
_DIR_HELP = "clinical-nlp project folder (default: found from the working directory and its parents)."


def _context(project_dir: Path | None, name: str | None):
    from clinical_nlp.doccano import DoccanoCredentials
    from clinical_nlp.project import resolve_project
    from clinical_nlp.store import Store

    project = resolve_project(project_dir)
    creds = DoccanoCredentials.from_env(url=project.config.doccano.url)
    return project, Store(project.store_url), creds, name or project.config.doccano.project


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="Round trip with a Doccano server: sync the project, push pre-annotations, pull labels.",
        no_args_is_help=True,
    )
    app.add_typer(sub, name="doccano")

    @sub.command("sync")
    def sync_cmd(
        project: str = typer.Option(None, "--project", help=_PROJECT_HELP),
        project_dir: Path = typer.Option(None, "--project-dir", help=_DIR_HELP),
        annotators: str = typer.Option("", help="Comma-separated annotators to add with the annotator role."),
        approvers: str = typer.Option("", help="Comma-separated users to add with the annotation_approver role."),
        admins: str = typer.Option("", help="Comma-separated users to add with the project_admin role."),
    ) -> None:
        """Create or update the Doccano project from the label schema and guideline.

        Creates the entity labels (schema colours), the attribute labels
        (negation:negated, ... see the guideline), allows overlapping spans, turns
        collaborative mode off, writes the guideline markdown into the project's
        guideline page and adds members (users are created when missing; their
        passwords come from DOCCANO_USER_PASSWORDS / DOCCANO_CREDENTIALS_FILE).
        """
        from clinical_nlp.doccano import DoccanoServer

        proj, _store, creds, name = _context(project_dir, project)
        members = {}
        for names, role in ((annotators, "annotator"), (approvers, "annotation_approver"), (admins, "project_admin")):
            members.update({n.strip(): role for n in names.split(",") if n.strip()})
        pid = DoccanoServer(creds).sync_project(name, proj.guideline(), members)
        typer.echo(f"Doccano project {name!r} (id {pid}) in sync with guideline {proj.guideline().version}")

    @sub.command("push")
    def push_cmd(
        input: Path = typer.Option(
            ...,
            "--input",
            exists=True,
            dir_okay=False,
            help="Pre-annotations JSONL (output of 'clinical-nlp preannotate').",
        ),
        annotators: str = typer.Option(..., help="Comma-separated Doccano user names (e.g. alice,bob)."),
        overlap: int = typer.Option(
            2, min=1, help="Annotators per note (notes with a safety-critical label go to all)."
        ),
        project: str = typer.Option(None, "--project", help=_PROJECT_HELP),
        project_dir: Path = typer.Option(None, "--project-dir", help=_DIR_HELP),
        allow_phi: bool = typer.Option(
            False, "--allow-phi", help="Push notes not marked de-identified (needs --actor; audited)."
        ),
        actor: str | None = typer.Option(
            None, help="Who runs this (audit; default $CLINICAL_NLP_ACTOR, else OS user)."
        ),
    ) -> None:
        """Send notes, each assigned annotator getting their own copy of the pre-annotations.

        Input rows: id, text, spans (start, end, label, attributes, score, source),
        optional model_version and deidentified. Safe to rerun: already pushed notes
        and annotators are skipped, an interrupted push resumes. Prints a JSON report.
        """
        from tqdm import tqdm

        from clinical_nlp.doccano import push, read_preannotations

        proj, store, creds, name = _context(project_dir, project)
        rows = read_preannotations(input)
        names = [a.strip() for a in annotators.split(",") if a.strip()]
        with tqdm(total=None, desc="pre-annotations placed", unit="note") as bar:
            report = push(
                store,
                proj.guideline(),
                name,
                rows,
                names,
                overlap=overlap,
                creds=creds,
                require_deid=proj.config.require_deid,
                allow_phi=allow_phi,
                actor=current_actor(actor),
                progress=bar.update,
            )
        typer.echo(
            json.dumps(
                {
                    "project": report.project,
                    "doccano_project_id": report.project_id,
                    "notes": report.notes,
                    "imported": report.imported,
                    "spans_created": report.spans_created,
                    "already_pushed": report.skipped_already_pushed,
                    "stale_links_reimported": report.stale_links,
                    "touched_left_alone": report.touched_left_alone,
                    "assigned": {a: len(v) for a, v in report.assignments.items()},
                    "seconds": round(report.seconds, 2),
                },
                indent=2,
            )
        )

    @sub.command("pull")
    def pull_cmd(
        output: Path = typer.Option(..., "--output", dir_okay=False, help="Labels JSONL to write (atomic)."),
        project: str = typer.Option(None, "--project", help=_PROJECT_HELP),
        project_dir: Path = typer.Option(None, "--project-dir", help=_DIR_HELP),
        annotators: str = typer.Option("", help="Only these annotators (default: everyone assigned by push)."),
        actor: str | None = typer.Option(
            None, help="Who runs this (audit; default $CLINICAL_NLP_ACTOR, else OS user)."
        ),
    ) -> None:
        """Fetch each annotator's labels on the notes they marked done and store them.

        Output rows (one per note and annotator): id, annotator, text, spans (start,
        end, label, text, negation, temporality, experiencer), edits (accepted,
        deleted, added, changed_label, changed_boundary, changed_attributes, total),
        guideline_version, model_version, timestamp.
        """
        from clinical_nlp.doccano import pull, pull_problems, write_pull

        proj, store, creds, name = _context(project_dir, project)
        names = [a.strip() for a in annotators.split(",") if a.strip()] or None
        rows = pull(store, proj.guideline(), name, annotators=names, creds=creds, actor=current_actor(actor))
        n = write_pull(rows, output)
        typer.echo(f"wrote {n} annotation(s) to {output}")
        problems = pull_problems(store, name)
        for p in problems:
            typer.echo(f"not pulled: note {p['note']!r}, annotator {p['annotator']!r}: {p['problem']}", err=True)
        if problems:
            typer.echo(f"{len(problems)} note/annotator pair(s) need fixing in Doccano, then pull again", err=True)

    @sub.command("status")
    def status_cmd(
        project: str = typer.Option(None, "--project", help=_PROJECT_HELP),
        project_dir: Path = typer.Option(None, "--project-dir", help=_DIR_HELP),
    ) -> None:
        """Progress per annotator (assigned, pre-annotations in place, done) as JSON."""
        from clinical_nlp.doccano import status

        _proj, store, creds, name = _context(project_dir, project)
        typer.echo(json.dumps(status(store, name, creds=creds), indent=2))
