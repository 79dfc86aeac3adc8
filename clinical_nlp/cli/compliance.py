"""Compliance commands: ``deid``, ``annotators``, ``audit``, ``qa``, ``report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from clinical_nlp.errors import ConfigError
from clinical_nlp.faults import crash_point
from clinical_nlp.hashing import file_sha256


def _actor(actor: str | None) -> str:
    from clinical_nlp.config import current_actor

    return current_actor(actor)


def _project_store(project_dir: Path | None):
    """The store of the project at ``project_dir`` (or the one found from the working directory)."""
    from clinical_nlp.project import resolve_project
    from clinical_nlp.store import Store

    return Store(resolve_project(project_dir).store_url)


def register(app: typer.Typer) -> None:  # noqa: C901 - one place for the area's commands
    @app.command("deid")
    def deid_cmd(
        input: Path = typer.Option(..., "--input", "-i", help="JSONL notes: id, text, optional patient."),
        output: Path = typer.Option(..., "--output", "-o", help="JSONL de-identified notes (deidentified: true)."),
        phi_output: Path | None = typer.Option(
            None, "--phi-output", help="JSONL of detected PHI: id, spans (start/end/label, ORIGINAL offsets)."
        ),
        map_output: Path | None = typer.Option(
            None, "--map-output", help="Also write the surrogate map (contains PHI!)."
        ),
        key: str | None = typer.Option(
            None,
            "--key",
            envvar="CLINICAL_NLP_DEID_KEY",
            help="Secret making surrogates/date shifts reproducible across runs.",
        ),
        project_dir: Path | None = typer.Option(
            None, "--project-dir", help="Also store the notes as de-identified and audit the run."
        ),
        actor: str | None = typer.Option(None, help="Who runs this (audit; default $CLINICAL_NLP_ACTOR or user)."),
        workers: int | None = typer.Option(
            None,
            "--workers",
            min=1,
            help="Run on a Dask LocalCluster of N worker processes (same output; each task holds whole patients).",
        ),
        detector: str = typer.Option(
            "crf",
            "--detector",
            help="crf: rules + the CRF tagger (default, fast); ensemble: + the fine-tuned MiniLM PHI tagger, "
            "a word is PHI where either says so (imports torch; slower).",
        ),
    ) -> None:
        """De-identify notes: detect PHI (rules + learned tagger), replace it with surrogates
        consistent per patient, shift dates per patient.

        Outputs: OUTPUT rows {id, patient, text, deidentified: true, deid_method, offset_map};
        PHI rows {id, spans}; nothing is written if the input is bad.
        """
        from tqdm import tqdm

        from clinical_nlp.deid import deidentify_file
        from clinical_nlp.deid.transformer import detector_for

        det = detector_for(detector)
        with tqdm(desc="deid", unit="note", disable=None) as bar:
            summary, results = deidentify_file(
                input,
                output,
                phi_output,
                map_output=map_output,
                key=key.encode("utf-8") if key else None,
                progress=bar.update,
                workers=workers,
                detector=det,
            )
        if project_dir is not None:
            from clinical_nlp.audit import AuditLog
            from clinical_nlp.types import Note

            store = _project_store(project_dir)
            rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines() if line.strip()]
            from clinical_nlp.services.privacy import record_items

            skip = ("id", "text", "offset_map", "privacy_review")
            notes = [Note(r["id"], r["text"], {k: v for k, v in r.items() if k not in skip}) for r in rows]
            store.refuse_text_changes(notes)  # before anything is stored
            source = _source_hashes(input, {str(r["id"]) for r in rows if r.get("privacy_review")})
            # the queue first: killed in between, the notes wait for the officer (the push gate holds
            # them) rather than pass as reviewed; a re-run replaces the open items
            queued = sum(
                record_items(store, r["id"], r.get("privacy_review") or [], source_sha256=source.get(str(r["id"])))
                for r in rows
            )
            crash_point("deid.queued")
            store.add_notes(
                notes, deidentified=True, method=summary.method, actor=_actor(actor), text_changes_checked=True
            )
            AuditLog(store).append(
                "deidentify",
                actor=_actor(actor),
                details={
                    "input_sha256": file_sha256(input),
                    "output": output.name,
                    "notes": summary.notes,
                    "phi_spans": summary.phi_spans,
                    "labels": summary.labels,
                    "method": summary.method,
                    "privacy_review_items": queued,
                },
            )
            if queued:
                typer.echo(
                    f"{queued} possible identifier(s) await a privacy officer (redacted meanwhile; notes with open "
                    "items are not pushed): clinical-nlp deid-review list / decide"
                )
        typer.echo(
            f"de-identified {summary.notes} notes, {summary.phi_spans} PHI spans "
            f"({', '.join(f'{k} {v}' for k, v in sorted(summary.labels.items()))}) -> {output}"
        )

    # privacy review queue ------------------------------------------------------
    priv = typer.Typer(help="Privacy review queue: possible identifiers deid was unsure of.", no_args_is_help=True)
    app.add_typer(priv, name="deid-review")

    @priv.command("list")
    def priv_list(
        project_dir: Path | None = typer.Option(None, "--project-dir"),
        status: str = typer.Option("open", help="open | confirmed | rejected | all."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Queue items: id, note, offsets in the de-identified text, label, why it was flagged, and the
        de-identified text around the item (its surrogate in «»), to find it in the original note."""
        from clinical_nlp.services.privacy import items, with_context

        store = _project_store(project_dir)
        rows = with_context(store, items(store, status=None if status == "all" else status))
        if as_json:
            typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        for r in rows:
            typer.echo(f"{r['id']}\t{r['note_id']}\t[{r['start']}, {r['end']})\t{r['label']}\t{r['reason']}")
            if r["context"]:
                typer.echo(f"\t{r['context']}")
        typer.echo(f"{len(rows)} item(s) {status}")

    @priv.command("notes")
    def priv_notes(
        output: Path = typer.Option(..., "--output", "-o", help="JSONL of the notes as the store holds them now."),
        project_dir: Path | None = typer.Option(None, "--project-dir"),
    ) -> None:
        """Write every note the push gate lets through (de-identified, no item awaiting review) as the store
        holds it now: after a review put original words back, pre-annotate this file, not deid's output."""
        from clinical_nlp.errors import PolicyError
        from clinical_nlp.io.jsonl import write_rows
        from clinical_nlp.io.paths import refuse_table_suffix
        from clinical_nlp.services.privacy import pushable_rows

        refuse_table_suffix({"--output": output})
        rows, held = pushable_rows(_project_store(project_dir))
        waiting = "; ".join(f"{n} {why}" for why, n in held.items())
        if not rows:
            raise PolicyError(f"no note is ready to push ({waiting or 'the store holds no notes'})")
        typer.echo(
            f"{write_rows(output, rows)} note(s) ready to push -> {output}"
            + (f"; held back: {waiting}" if waiting else "")
        )

    @priv.command("decide")
    def priv_decide(
        item: list[int] = typer.Argument(..., help="Queue item id(s)."),
        verdict: str = typer.Option(..., help="confirmed (it is an identifier) | rejected (it is not)."),
        reviewer: str = typer.Option(..., help="Privacy officer (registered with PHI access)."),
        original: Path | None = typer.Option(
            None,
            "--original",
            help="With --verdict rejected: the input deid read (JSONL, the officer's copy); the original words "
            "go back into the note in place of the surrogate (checked against its hash).",
        ),
        project_dir: Path | None = typer.Option(None, "--project-dir"),
    ) -> None:
        """Record the officer's verdict on each item (audited). A confirmed item keeps its surrogate; a rejected
        one too, unless --original gives the input, whose words then replace the surrogate."""
        from clinical_nlp.errors import InputFormatError
        from clinical_nlp.services.privacy import decide, items, open_items

        store = _project_store(project_dir)
        unknown = sorted(set(item) - {r["id"] for r in items(store)})
        if unknown:  # checked before any verdict is written
            raise InputFormatError(f"deid-review decide: no queue item(s) {unknown}")
        if original is not None and verdict != "rejected":
            raise InputFormatError("--original puts back words judged no identifier: use it with --verdict rejected")
        plan = None
        if original is not None:  # every check of the restoration before any verdict is written
            from clinical_nlp.services.privacy_restore import plan_restore, restore

            plan = plan_restore(store, item, _original_texts(original, store, item))
        for i in item:
            decide(store, i, verdict, reviewer)
        typer.echo(f"{len(item)} item(s) {verdict} by {reviewer}; {len(open_items(store))} open")
        if plan is not None:
            restored = restore(store, plan, reviewer=reviewer)
            typer.echo(
                f"original words restored: {sum(restored.values())} in {len(restored)} note(s); their texts in "
                "deid's output are now out of date: 'clinical-nlp deid-review notes -o FILE' writes them as they are"
            )
        elif verdict == "rejected":
            typer.echo("the surrogates stay in the notes; --original IN.jsonl puts the original words back")

    def _input_texts(path: Path, ids: set[str]) -> dict[str, str]:
        """The text of each note of ``ids`` in the input ``path`` (JSONL, CSV or Parquet rows with id and text)."""
        from clinical_nlp.io.note_rows import iter_note_rows

        if not ids:
            return {}
        found = {str(row.get("id")): row.get("text") for _, row in iter_note_rows(path) if str(row.get("id")) in ids}
        return {k: v for k, v in found.items() if isinstance(v, str)}

    def _source_hashes(path: Path, ids: set[str]) -> dict[str, str]:
        """sha256 of the original text of each note in ``ids`` (its review items' words can be put back)."""
        from clinical_nlp.store import text_sha256

        return {nid: text_sha256(text) for nid, text in _input_texts(path, ids).items()}

    def _original_texts(path: Path, store: Any, item_ids: list[int]) -> dict[str, str]:
        """The original texts of the items' notes, read from ``path``."""
        from clinical_nlp.services.privacy import items

        return _input_texts(path, {r["note_id"] for r in items(store) if r["id"] in set(item_ids)})

    # annotators -------------------------------------------------------------
    ann = typer.Typer(help="Annotator registry: roles, credentials, qualifications.", no_args_is_help=True)
    app.add_typer(ann, name="annotators")

    def _registry(project_dir: Path | None):
        from clinical_nlp.annotators import Registry

        return Registry(_project_store(project_dir))

    @ann.command("add")
    def ann_add(
        name: str = typer.Argument(..., help="Annotator user name (as in Doccano)."),
        role: str = typer.Option("annotator", help="annotator | expert | admin."),
        email: str | None = typer.Option(None),
        specialty: str | None = typer.Option(None, help="Clinical specialty (e.g. oncology)."),
        license_id: str | None = typer.Option(None, help="Clinical licence id (gives clinical_license)."),
        hipaa_training: str | None = typer.Option(None, help="HIPAA training date YYYY-MM-DD."),
        guideline_version: str | None = typer.Option(
            None, help="Guideline version trained on (default: the project's current one)."
        ),
        phi_access: bool = typer.Option(False, "--phi-access", help="May see identified notes."),
        qualification: list[str] = typer.Option([], "--qualification", "-q", help="Extra qualification (repeat)."),
        update: bool = typer.Option(False, help="Replace an existing record."),
        project_dir: Path | None = typer.Option(None, "--project-dir"),
        actor: str | None = typer.Option(None, help="Who registers (audit)."),
    ) -> None:
        """Register (or --update) an annotator; the change is audited."""
        from clinical_nlp.annotators import Annotator, unknown_guideline_version
        from clinical_nlp.project import resolve_project

        current = resolve_project(project_dir).guideline().version
        guideline_version = guideline_version or current
        person = Annotator(
            name,
            role,
            email,
            specialty,
            license_id,
            hipaa_training,
            guideline_version,
            phi_access,
            tuple(qualification),
        )
        registry = _registry(project_dir)
        registry.add(person, actor=_actor(actor), replace=update)
        typer.echo(f"{'updated' if update else 'added'} {name} ({role})")
        if warning := unknown_guideline_version(registry.store, guideline_version, current):
            typer.echo(warning, err=True)

    @ann.command("list")
    def ann_list(
        project_dir: Path | None = typer.Option(None, "--project-dir"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List registered annotators with role and qualifications."""
        from clinical_nlp.project import resolve_project

        people = _registry(project_dir).list()
        current = resolve_project(project_dir).guideline().version
        if as_json:
            typer.echo(json.dumps([p.to_dict() for p in people], indent=2))
            return
        for p in people:
            typer.echo(f"{p.name}\t{p.role}\t{','.join(sorted(p.qualifications(guideline_version=current)))}")

    @ann.command("show")
    def ann_show(name: str, project_dir: Path | None = typer.Option(None, "--project-dir")) -> None:
        """Show one annotator's record and current qualifications (JSON)."""
        from clinical_nlp.project import resolve_project

        p = _registry(project_dir).get(name)
        current = resolve_project(project_dir).guideline().version
        quals = sorted(p.qualifications(guideline_version=current))
        typer.echo(json.dumps({**p.to_dict(), "qualifications": quals, "current_guideline": current}, indent=2))

    # audit ------------------------------------------------------------------
    aud = typer.Typer(help="Append-only hash-chained audit log.", no_args_is_help=True)
    app.add_typer(aud, name="audit")

    def _log(project_dir: Path | None):
        from clinical_nlp.audit import AuditLog

        return AuditLog(_project_store(project_dir))

    @aud.command("verify")
    def audit_verify(
        project_dir: Path | None = typer.Option(None, "--project-dir"),
        export_file: Path | None = typer.Option(None, "--file", help="Verify an exported JSONL instead."),
        head: str | None = typer.Option(None, help="Expected head hash (from an export manifest or audit export)."),
    ) -> None:
        """Check the keyed hash chain, its head and every annotation row's content hash; exit 2 naming
        each edited, removed or reordered entry and each row changed outside the engine."""
        from clinical_nlp.audit import verify_export

        log = _log(project_dir)
        if export_file is not None:
            n = verify_export(export_file, key=log.key, expected_head=head)
            typer.echo(f"audit export OK: {n} entries")
            return
        n = log.verify(expected_head=head)
        rows = log.verify_rows()
        typer.echo(f"audit log OK: {n} entries, {rows} annotation rows match their audited hashes; head {log.head()}")

    @aud.command("show")
    def audit_show(
        project_dir: Path | None = typer.Option(None, "--project-dir"),
        action: str | None = typer.Option(None, help="Only this action."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Print the audit entries (seq, time, actor, action, details)."""
        for e in _log(project_dir).entries(action):
            if as_json:
                row = e.to_dict()
                del row["prev_hash"]  # the listing shows each entry's own hash only
                typer.echo(json.dumps(row))
            else:
                typer.echo(f"#{e.seq}\t{e.timestamp}\t{e.actor}\t{e.action}\t{json.dumps(dict(e.details))[:200]}")

    @aud.command("export")
    def audit_export(
        output: Path = typer.Option(..., "--output", "-o", help="JSONL file to write."),
        project_dir: Path | None = typer.Option(None, "--project-dir"),
    ) -> None:
        """Write the verified log as JSONL with a final head-hash line; prints the head hash."""
        from clinical_nlp.audit import export_log

        typer.echo(export_log(_log(project_dir), output))

    # qa ---------------------------------------------------------------------
    qa = typer.Typer(help="QA review coverage policy and guideline drift.", no_args_is_help=True)
    app.add_typer(qa, name="qa")

    def _store(project_dir: Path | None):
        from clinical_nlp.project import resolve_project
        from clinical_nlp.store import Store

        project = resolve_project(project_dir)
        return project, Store(project.store_url)

    @qa.command("check")
    def qa_check(
        project_dir: Path | None = typer.Option(None, "--project-dir"),
        label: list[str] = typer.Option([], "--label", help="Only these labels."),
    ) -> None:
        """Report expert-review coverage per label; exit 2 listing items to review if unmet."""
        from clinical_nlp.qa import require_qa_coverage

        project, store = _store(project_dir)
        report = require_qa_coverage(store, labels=label or None, schema=project.guideline().schema)
        for name, cov in report.labels.items():
            typer.echo(f"{name}\t{len(cov.reviewed)}/{len(cov.required)} reviewed (rate {cov.review_rate})")
        typer.echo("QA policy met")

    @qa.command("todo")
    def qa_todo_cmd(
        project_dir: Path | None = typer.Option(None, "--project-dir"),
        label: list[str] = typer.Option([], "--label", help="Only these labels."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (a list of {item, label, why, ...})."),
    ) -> None:
        """Everything the QA policy still requires an expert to review, none left out: item, label, why."""
        from clinical_nlp.qa import qa_todo

        project, store = _store(project_dir)
        todo = qa_todo(store, project.guideline().schema, labels=label or None)
        if as_json:
            typer.echo(json.dumps(todo, indent=2))
            return
        for row in todo:
            typer.echo(f"{row['item']}\t{row['label']}\t{row['why']}")
        typer.echo(f"{len(todo)} review(s) open" + ("" if todo else ": QA policy met"))

    @qa.command("push")
    def qa_push(
        reviewer: str = typer.Option(..., help="Registered expert who reviews (with her own Doccano account)."),
        project_dir: Path | None = typer.Option(None, "--project-dir"),
    ) -> None:
        """Put every note with an open QA review into REVIEWER's Doccano QA project (idempotent)."""
        from clinical_nlp.doccano import DoccanoCredentials
        from clinical_nlp.doccano.qa_review import push_qa_review

        project, store = _store(project_dir)
        creds = DoccanoCredentials.from_env(url=project.config.doccano.url)
        rep = push_qa_review(store, project.guideline(), project.config.doccano.project, reviewer, creds=creds)
        typer.echo(json.dumps(rep.__dict__, indent=2))
        typer.echo(
            f"{reviewer}: open {rep.link}; per note, check the labels named under 'review', correct what is wrong, "
            "optionally comment, mark it done; then run 'clinical-nlp qa pull'"
        )

    @qa.command("pull")
    def qa_pull(
        reviewer: str = typer.Option(..., help="The reviewer whose Doccano QA project is read."),
        project_dir: Path | None = typer.Option(None, "--project-dir"),
    ) -> None:
        """Record a review (confirmed / corrected) of every required label on each note REVIEWER marked done;
        a correction becomes gold as her decision. Exit 2 if a note had a problem."""
        from clinical_nlp.doccano import DoccanoCredentials
        from clinical_nlp.doccano.qa_review import pull_qa_review

        project, store = _store(project_dir)
        creds = DoccanoCredentials.from_env(url=project.config.doccano.url)
        rep = pull_qa_review(store, project.guideline(), project.config.doccano.project, reviewer, creds=creds)
        typer.echo(json.dumps(rep.__dict__, indent=2))
        if rep.problems:
            raise typer.Exit(2)

    @qa.command("review")
    def qa_review(
        item: str,
        label: str,
        expert: str = typer.Option(..., help="Registered expert."),
        verdict: str = typer.Option("confirmed", help="confirmed | corrected | rejected."),
        comment: str | None = typer.Option(None, help="Free-text note kept with the review."),
        project_dir: Path | None = typer.Option(None, "--project-dir"),
    ) -> None:
        """Record that EXPERT reviewed LABEL on ITEM (checked, audited; a later review supersedes it)."""
        from clinical_nlp.qa import record_review

        project, store = _store(project_dir)
        guideline = project.guideline()
        record_review(
            store,
            item,
            label,
            expert,
            verdict=verdict,
            comment=comment,
            schema=guideline.schema,
            guideline_version=guideline.version,
        )
        typer.echo(f"recorded review of {label} on {item} by {expert} ({verdict})")

    @qa.command("drift")
    def qa_drift(project_dir: Path | None = typer.Option(None, "--project-dir")) -> None:
        """List annotations made under a guideline version other than the current one."""
        from clinical_nlp.qa import guideline_drift

        project, store = _store(project_dir)
        rep = guideline_drift(store, project.guideline().version)
        typer.echo(json.dumps(rep.as_dict(), indent=2))

    @app.command("report")
    def report_cmd(
        output: Path = typer.Option(..., "--output", "-o", help="Folder for report.html and report.json."),
        project_dir: Path | None = typer.Option(None, "--project-dir"),
    ) -> None:
        """Dataset documentation for auditors: one self-contained HTML page (plots embedded)
        and a JSON file (corpus statistics, annotators and qualifications, guideline versions,
        agreement per label, QA coverage, adjudications, model versions, de-identification)."""
        from clinical_nlp.dataset_report import build_report

        html_path, json_path = build_report(project_dir, output)
        typer.echo(f"wrote {html_path} and {json_path}")


__all__ = ["register", "ConfigError"]
