"""A development set must not be the training data: the check the training commands share."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import typer

from clinical_nlp.errors import InputFormatError


def check_dev_against_train(
    dev: Iterable[tuple[str, str]], train_texts: Iterable[str], *, what: str, why: str, source: Path | str
) -> None:
    """Refuse when every non-blank ``(id, text)`` of ``dev`` repeats a training text; warn naming the first
    when some do. ``what``: "note" or "row"; ``why``: what a dev set of training data would measure."""
    seen = {t.strip() for t in train_texts if t.strip()}
    given = [(i, t.strip()) for i, t in dev if t.strip()]
    shared = [i for i, t in given if t in seen]
    if shared and len(shared) == len(given):
        raise InputFormatError(f"every dev {what} is also a training {what}: {why}", source=str(source))
    if shared:
        typer.echo(
            f"warning: {len(shared)} dev {what}(s) have the text of a training {what} (first: {shared[0]!r}); "
            "the dev figures count them",
            err=True,
        )


__all__ = ["check_dev_against_train"]
