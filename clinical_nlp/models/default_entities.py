"""The entity model shipped with the package (built by ``make model``), used when no ``--model`` is given."""

from __future__ import annotations

from pathlib import Path

DEFAULT_ENTITY_MODEL_DIR = Path(__file__).resolve().parent.parent / "resources" / "entities" / "default"


def default_entity_model_dir() -> Path | None:
    """The shipped model's directory, or None when it has not been built."""
    return DEFAULT_ENTITY_MODEL_DIR if (DEFAULT_ENTITY_MODEL_DIR / "model.json").exists() else None
