"""A comma-separated annotator list naming someone twice is refused before any work."""

from __future__ import annotations

import json

import pytest

NOTE = {"id": "n1", "text": "Seen today for chest pain."}


@pytest.mark.parametrize(
    "args",
    [
        ["round", "start", "--annotators", "alice,bob,alice"],
        ["doccano", "push", "--input", "IN", "--annotators", "alice, alice"],
        ["doccano", "pull", "--output", "OUT", "--annotators", "bob,bob"],
    ],
)
def test_an_annotator_named_twice_is_refused(tmp_path, cli, monkeypatch, args):
    monkeypatch.setenv("DOCCANO_URL", "http://127.0.0.1:9")  # refused before any server is asked
    from clinical_nlp.project import init_project

    project = init_project(tmp_path / "proj")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(NOTE) + "\n")
    args = [str(src) if a == "IN" else str(tmp_path / "out.jsonl") if a == "OUT" else a for a in args]
    code, output = cli([*args, "--project-dir", str(project.root)])
    assert code == 2 and "is named twice" in output, output


def test_every_command_taking_the_project_folder_accepts_project_dir():
    """Before: the six adjudicate commands took the folder as --project only (--project-dir everywhere else)."""
    import typer

    from clinical_nlp.cli.app import app

    def commands(cmd, path=()):
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click: no isinstance here)
            for name, sub in cmd.commands.items():
                yield from commands(sub, (*path, name))
        else:
            yield path, cmd

    folder_options = [
        (" ".join(path), p.opts)
        for path, cmd in commands(typer.main.get_command(app))
        for p in cmd.params
        if p.param_type_name == "option" and p.name in ("project", "project_dir") and "Path" in type(p.type).__name__
    ]
    assert len(folder_options) > 30
    assert [(c, o) for c, o in folder_options if "--project-dir" not in o] == []
