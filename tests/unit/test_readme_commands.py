"""Every command line README's command table shows exists, with each subcommand it names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _table_commands() -> list[list[str]]:
    """``[command, subcommand?]`` for each ``clinical-nlp`` line of the README's command table."""
    body = README.read_text(encoding="utf-8").split("## Command line", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    commands = []
    for line in body.splitlines():
        m = re.match(r"clinical-nlp ([a-z][a-z-]*(?: [a-z][a-z-]*(?:\|[a-z][a-z-]*)*)?(?: / [a-z][a-z-]*)?)", line)
        if not m:
            continue
        words = m[1].split()
        if "/" in words:  # "ingest / convert": two commands
            commands += [[words[0]], [words[2]]]
        elif len(words) > 1:
            commands += [[words[0], sub] for sub in words[1].split("|")]
        else:
            commands.append(words[:1])
    return commands


COMMANDS = _table_commands()


def test_the_table_was_read():
    assert len(COMMANDS) > 25 and ["audit", "verify"] in COMMANDS and ["report"] in COMMANDS


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w) for w in COMMANDS])
def test_readme_command_exists(cli, words):
    code, output = cli([*words, "--help"])
    assert code == 0, f"README names 'clinical-nlp {' '.join(words)}', which does not run: {output[-300:]}"
