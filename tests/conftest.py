"""Shared fixtures: repository paths, the shared corpora, temp projects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_corpora_dir() -> Path:
    """``$CLINICAL_NLP_SHARED/corpora`` or ``../shared/corpora`` beside the checkout."""
    env = os.environ.get("CLINICAL_NLP_SHARED")
    base = Path(env) if env else REPO.parent / "shared"
    return base / "corpora"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    """The bundled sample corpora (``corpora/`` in the repository)."""
    return REPO / "corpora"


@pytest.fixture(scope="session")
def shared_corpora() -> Path:
    """The full shared corpora; tests that need them are skipped where they are absent."""
    path = shared_corpora_dir()
    if not path.exists():
        pytest.skip(f"shared corpora not found at {path} (set CLINICAL_NLP_SHARED)")
    return path
