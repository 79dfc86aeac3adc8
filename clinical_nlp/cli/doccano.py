"""Doccano commands: ``doccano sync|push|pull|status`` (thin wrappers over clinical_nlp.doccano).

The engine's own login comes from the environment (DOCCANO_URL, DOCCANO_ADMIN_USER,
DOCCANO_ADMIN_PASSWORD) or DOCCANO_CREDENTIALS_FILE, never from options; no
annotator password is read anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clinical_nlp.cli.names import name_list
from clinical_nlp.config import current_actor
from clinical_nlp.errors import InputFormatError

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
        """Create or update each annotator's Doccano project from the label schema and guideline.

        One project per annotator (<doccano.project>--<annotator>; default: every
        annotator already pushed to): the entity labels (schema colours), the attribute
        labels (NEG, POSS, HIST, HYPO, FAM, OTHER; their legend heads the guideline page), overlapping spans allowed,
        collaborative annotation on, the guideline markdown as the project's guideline
        page; the annotator, approvers and admins as members. Accounts must exist: each
        person creates their own (clinical-nlp holds no passwords).
        """
        from clinical_nlp.doccano import DoccanoServer, annotator_project_name, example_links

        proj, store, creds, name = _context(project_dir, project)
        people = name_list(annotators, "--annotators")
        people = people or sorted({a for a, _ in example_links(store, name)})
        if not people:
            raise InputFormatError("no annotators: pass --annotators (nothing has been pushed yet)")
        extra = {}
        for names, role in ((approvers, "annotation_approver"), (admins, "project_admin")):
            extra.update({n.strip(): role for n in names.split(",") if n.strip()})
        server = DoccanoServer(creds)
        for who in people:
            pname = annotator_project_name(name, who)
            pid = server.sync_project(pname, proj.guideline(), {who: "annotator", **extra})
            typer.echo(f"Doccano project {pname!r} (id {pid}) in sync with guideline {proj.guideline().version}")

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
        """Import notes with their pre-annotations into each assigned annotator's own Doccano project.

        Input rows: id, text, spans (start, end, label, attributes, score, source),
        optional model_version and deidentified. Logs in only as the engine's Doccano
        user (no annotator password). Safe to rerun: already pushed notes are skipped,
        an interrupted push resumes, nothing already on the server is changed. Prints a
        JSON report with each annotator's project link.
        """
        from tqdm import tqdm

        from clinical_nlp.doccano import push, read_preannotations

        proj, store, creds, name = _context(project_dir, project)
        rows = read_preannotations(input)
        names = name_list(annotators, "--annotators")
        with tqdm(total=None, desc="examples imported", unit="example") as bar:
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
                    "doccano_projects": {
                        a: {"name": report.doccano_projects[a], "id": pid, "link": f"{creds.url}/projects/{pid}"}
                        for a, pid in report.project_ids.items()
                    },
                    "notes": report.notes,
                    "imported": report.imported,
                    "recovered": report.recovered,
                    "spans_created": report.spans_created,
                    "already_pushed": report.skipped_already_pushed,
                    "stale_links_reimported": report.stale_links,
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
        guideline_version, model_version, timestamp (when the annotator marked it done),
        pulled_at. Exit 2 if a note had a problem (named; everyone else's work is written and stored).
        """
        from clinical_nlp.doccano import pull, pull_problems, write_pull

        proj, store, creds, name = _context(project_dir, project)
        names = name_list(annotators, "--annotators") or None
        rows = pull(store, proj.guideline(), name, annotators=names, creds=creds, actor=current_actor(actor))
        n = write_pull(rows, output)
        typer.echo(f"wrote {n} annotation(s) to {output}")
        current = proj.guideline().version
        if older := sum(1 for r in rows if r["guideline_version"] != current):
            typer.echo(
                f"warning: {older} annotation(s) were pushed under another guideline version than the current "
                f"{current}; they are recorded under theirs ('clinical-nlp qa drift' lists them)",
                err=True,
            )
        problems = pull_problems(store, name)
        for p in problems:
            typer.echo(f"not pulled: note {p['note']!r}, annotator {p['annotator']!r}: {p['problem']}", err=True)
        if problems:  # the others are written and stored; exit 2 so that a script does not go on unaware
            typer.echo(f"{len(problems)} note/annotator pair(s) need fixing in Doccano, then pull again", err=True)
            raise typer.Exit(2)

    @sub.command("status")
    def status_cmd(
        project: str = typer.Option(None, "--project", help=_PROJECT_HELP),
        project_dir: Path = typer.Option(None, "--project-dir", help=_DIR_HELP),
        activity: bool = typer.Option(False, "--activity", help="Also each annotator's last activity (slower)."),
    ) -> None:
        """Progress per annotator (assigned, pre-annotations in place, done[, last activity]) as JSON."""
        from clinical_nlp.doccano import status

        _proj, store, creds, name = _context(project_dir, project)
        typer.echo(json.dumps(status(store, name, creds=creds, activity=activity), indent=2))
