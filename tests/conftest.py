"""Shared fixtures: repository paths, the shared corpora, temp projects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import settings

# CI runs the property tests on a fixed example sequence (reproducible, no flake); locally they explore
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent

# derived lexicon tables (deid.gazetteer) are cached in a directory of this test run, not the user's
# (inherited by the CLI subprocesses the tests start)
if "CLINICAL_NLP_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["CLINICAL_NLP_CACHE_DIR"] = tempfile.mkdtemp(prefix="clinical-nlp-test-cache-")


def skip_or_fail(reason: str) -> None:
    """Skip where a test's data or tool is missing, but fail in CI (``CI`` set): there, everything
    the suite needs is installed by ``make test``, and a skipped test would hide a missing step."""
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(reason)


def shared_corpora_dir() -> Path:
    """``$CLINICAL_NLP_SHARED/corpora`` or ``../shared/corpora`` beside the checkout."""
    env = os.environ.get("CLINICAL_NLP_SHARED")
    base = Path(env) if env else REPO.parent / "shared"
    return base / "corpora"


@pytest.fixture(scope="session")
def skip_unless_available():
    """:func:`skip_or_fail` for tests: skip locally, fail in CI."""
    return skip_or_fail


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    """The bundled sample corpora (``corpora/`` in the repository)."""
    return REPO / "corpora"


@pytest.fixture(scope="session")
def shared_corpora() -> Path:
    """The full shared corpora; tests that need them are skipped where they are absent (failed in CI)."""
    path = shared_corpora_dir()
    if not path.exists():
        skip_or_fail(f"shared corpora not found at {path} (set CLINICAL_NLP_SHARED)")
    return path


class CliResult(NamedTuple):
    """What the console script would give: its exit code and everything it printed."""

    exit_code: int
    output: str


def run_cli(args: list[str], *, input: str | None = None) -> CliResult:
    """Run ``clinical-nlp ARGS`` in process as the console script does (a ClinicalNLPError: message, exit 2)."""
    from typer.testing import CliRunner

    from clinical_nlp.cli.app import app
    from clinical_nlp.errors import ClinicalNLPError

    res = CliRunner().invoke(app, args, input=input)
    if isinstance(res.exception, ClinicalNLPError):
        return CliResult(2, res.output + f"error: {res.exception}\n")
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return CliResult(res.exit_code, res.output)


@pytest.fixture()
def cli():
    """``cli([...])`` runs a command in process and returns (exit_code, output) as the console script would."""
    return run_cli
