"""The ``clinical-nlp`` entry point: collects the commands of each area.

Each area lives in its own module under ``clinical_nlp.cli`` and exposes
``register(app)``; commands there only parse arguments and call library
functions, turning :class:`ClinicalNLPError` into a clean message and exit 2.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from clinical_nlp.errors import ClinicalNLPError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(
    name="clinical-nlp",
    help="Clinical NLP annotation engine: pre-annotate, sync with Doccano, reach consensus, "
    "retrain in active-learning rounds, and export documented training corpora.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Clinical NLP annotation engine (see README.md for the workflow)."""


#: Command modules, in help order. Each defines ``register(app: typer.Typer)``.
COMMAND_MODULES: tuple[str, ...] = (
    "project",
    "corpus",
    "pipeline",
    "models",
    "scale",
    "doccano",
    "consensus",
    "active",
    "rounds",
    "compliance",
)

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"clinical_nlp.cli.{_name}")
    except ModuleNotFoundError as _exc:  # an area not built yet
        if _exc.name != f"clinical_nlp.cli.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ClinicalNLPError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except OSError as exc:  # a folder that cannot be created, a file that cannot be written: the user's to fix
        where = f": {exc.filename}" if exc.filename else ""
        typer.secho(f"error: {exc.strerror or exc}{where}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
