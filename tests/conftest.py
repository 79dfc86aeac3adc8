"""Shared fixtures: repository paths, the shared corpora, temp projects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests on a fixed example sequence (reproducible, no flake); locally they explore
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent


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
