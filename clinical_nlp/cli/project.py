"""Project commands: ``init``."""

from __future__ import annotations

from pathlib import Path

import typer

from clinical_nlp.project import init_project


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(
        directory: Path = typer.Argument(..., help="Folder to create the project in (created if missing)."),
        name: str = typer.Option(None, help="Project name (default: the folder name)."),
        store_url: str | None = typer.Option(
            None,
            help="SQLAlchemy URL of the state store (relative SQLite paths are inside DIR; default "
            "sqlite:///state.db, or with --force the existing project's).",
        ),
        force: bool = typer.Option(
            False,
            help="Re-create an existing project's config and guideline files; each replaced file that differs "
            "is kept as NAME.bak-<time>, and the store is kept.",
        ),
    ) -> None:
        """Create a project: clinical-nlp.yaml, a copy of the guidelines, and the state store.

        Output: DIR/clinical-nlp.yaml (guideline, label schema, Doccano settings, store URL),
        DIR/guidelines/ and the store (DIR/state.db by default).
        """
        from clinical_nlp.store import shown_url

        project = init_project(directory, name=name, store_url=store_url, force=force)
        typer.echo(f"created project {project.config.name!r} in {project.root}")
        typer.echo(f"guideline version {project.guideline().version}; store {shown_url(project.store_url)}")
        backups = sorted(p.relative_to(project.root) for p in project.root.rglob("*.bak-*"))
        if force and backups:
            typer.echo(f"kept the files replaced: {', '.join(map(str, backups))}")
