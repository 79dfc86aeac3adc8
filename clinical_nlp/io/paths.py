"""Refuse command lines whose output paths would overwrite an input or each other."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from clinical_nlp.errors import InputFormatError

#: a project's own files, which no command output may replace
PROJECT_FILES = frozenset({"clinical-nlp.yaml", "audit.key", "audit.head"})
_SQLITE_MAGIC = b"SQLite format 3\x00"


def refuse_protected(path: Path | str) -> None:
    """Raise when ``path`` is a project's config or audit file or an SQLite database (a store): an output
    written there would destroy the project's state (``-o state.db``)."""
    path = Path(path)
    if not path.is_file():
        return
    if path.name in PROJECT_FILES:
        raise InputFormatError(
            "is a project file (its config or audit trail): write the output to another path", source=str(path)
        )
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_SQLITE_MAGIC))
    except OSError:
        return
    if magic == _SQLITE_MAGIC:
        raise InputFormatError("is an SQLite database (a project store?): write the output to another path",
                               source=str(path))  # fmt: skip


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def refuse_clashing_paths(inputs: Mapping[str, Path | str | None], outputs: Mapping[str, Path | str | None]) -> None:
    """Raise when an output names an input (it would be replaced) or two outputs name one file.

    Keys are the option names shown in the message (``"--output"``); ``None`` values are skipped.
    Checked before anything is read or written, so a refused command changes nothing.
    """
    given_inputs = [(name, Path(p)) for name, p in inputs.items() if p is not None]
    given_outputs = [(name, Path(p)) for name, p in outputs.items() if p is not None]
    for _, out in given_outputs:
        refuse_protected(out)  # before the work, not only when the output is written
    for out_name, out in given_outputs:
        for in_name, src in given_inputs:
            if _same_file(out, src):
                raise InputFormatError(
                    f"{out_name} names the {in_name} file: it would be overwritten; write to another path",
                    source=str(out),
                )
    for i, (name_a, a) in enumerate(given_outputs):
        for name_b, b in given_outputs[i + 1 :]:
            if _same_file(a, b):
                raise InputFormatError(
                    f"{name_a} and {name_b} name the same file: one would replace the other; give each its own path",
                    source=str(a),
                )


#: Suffixes that name a table format: a JSON-lines output under one of them is read back as that table.
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".xlsx")


def refuse_table_suffix(outputs: Mapping[str, Path | str | None], *, allowed: tuple[str, ...] = ()) -> None:
    """Refuse a JSON-lines output named like a table (``-o notes.csv``): every reader would take it for one."""
    for option, path in outputs.items():
        if path is None:
            continue
        suffix = Path(path).suffix.lower()
        if suffix in TABLE_SUFFIXES and suffix not in allowed:
            also = f" (or {', '.join(allowed)})" if allowed else ""
            raise InputFormatError(f"{option} {path}: this output is written as JSON lines; name it .jsonl{also}")
