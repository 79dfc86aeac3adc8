"""Train an entity model of any kind (or a bootstrap committee), evaluate, save and register it."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from clinical_nlp.errors import ConfigError
from clinical_nlp.models.entities.base import EntityModel, new_version, read_model_meta, utc_now
from clinical_nlp.models.entities.config import MODEL_FILE, TrainConfig
from clinical_nlp.models.entities.ensemble import train_ensemble
from clinical_nlp.models.entities.evaluate import evaluate_entity_model
from clinical_nlp.models.entities.spacy_model import train_spacy
from clinical_nlp.models.entities.spans import data_hash
from clinical_nlp.models.entities.training import check_docs
from clinical_nlp.models.entities.transformer_model import train_transformer
from clinical_nlp.models.registry import register_model
from clinical_nlp.types import AnnotatedNote


def train_entity_model(
    train: Sequence[AnnotatedNote],
    dev: Sequence[AnnotatedNote] | None,
    config: TrainConfig,
    output: Path | str | None = None,
    *,
    parent_version: str | None = None,
    store: Any | None = None,
    progress: bool = True,
    partial: Sequence[AnnotatedNote] = (),
) -> EntityModel:
    """Train an entity model, evaluate it on ``dev`` and (optionally) save and register it.

    Args:
        train: gold-annotated notes (empty texts are skipped).
        dev: fixed dev set for early stopping and the reported metrics (``None``: no early stopping).
        config: see :class:`TrainConfig`.
        output: model directory to write (replaced if it already holds a model).
        parent_version: version this one derives from (default: the base model's version).
        store: a :class:`clinical_nlp.store.Store`; when given, a ``ModelVersionRow`` is recorded.
        progress: show a progress bar.
        partial: spaCy kind only: partially labelled notes, e.g. marked findings of EHR sentences:
            only their spans' tokens are taught (see ``spacy_model._partial_examples``), every
            other token is unknown.

    Returns:
        The trained :class:`EntityModel` (``path`` set when ``output`` was given).
    """
    from clinical_nlp.config import load_guideline

    train = check_docs(train, "training data")
    dev = [d for d in (dev or []) if d.text.strip()] or None
    partial = [d for d in partial if d.text.strip() and d.spans]
    if partial and config.kind != "spacy":
        raise ConfigError(f"partially labelled notes train the spaCy kind only, not {config.kind!r}")
    dhash = data_hash(train, config.labels)
    if parent_version is None and config.base_model is not None and (Path(config.base_model) / MODEL_FILE).exists():
        parent_version = read_model_meta(config.base_model).get("version")
    meta: dict[str, Any] = {
        "version": new_version(config.kind, dhash, config.seed),
        "created_at": utc_now(),
        "data_hash": dhash,
        "dev_hash": data_hash(dev, config.labels) if dev else None,
        "guideline_version": load_guideline().version,
        "parent_version": parent_version,
        "n_train_docs": len(train),
        "n_dev_docs": len(dev) if dev else 0,
        "config": config.to_json(),
    }
    if partial:
        meta["partial_hash"] = data_hash(partial)
        meta["n_partial_docs"] = len(partial)
    t0 = time.perf_counter()
    if config.kind == "spacy":
        model, info = train_spacy(train, dev, config, meta, progress, partial)
    elif config.kind == "transformer":
        model, info = train_transformer(train, dev, config, meta, progress)
    else:
        model, info = train_ensemble(train, dev, config, meta, progress)
    train_seconds = time.perf_counter() - t0
    model.meta.update(
        {
            "span_policy": info["span_policy"],
            "train_seconds": round(train_seconds, 2),
            "steps": info["steps"],
            "best_epoch": info["best_epoch"],
        }
    )
    metrics: dict[str, Any] = {
        "version": model.version,
        "train_seconds": round(train_seconds, 2),
        "history": info["history"],
        "best_epoch": info["best_epoch"],
    }
    if dev:
        metrics["dev"] = evaluate_entity_model(model, dev)
    model.metrics = metrics
    if output is not None:
        model.save(Path(output))
    if store is not None:
        register_model(store, model)
    return model


def train_committee(
    train: Sequence[AnnotatedNote],
    dev: Sequence[AnnotatedNote] | None,
    config: TrainConfig,
    n_members: int = 3,
    *,
    progress: bool = False,
) -> list[EntityModel]:
    """Bootstrap committee: ``n_members`` models, each on a bootstrap resample with its own seed."""
    train = check_docs(train, "training data")
    members = []
    for m in range(n_members):
        seed = config.seed + m
        rng = random.Random(seed)
        sample = [train[rng.randrange(len(train))] for _ in train]
        # duplicate ids are fine for training; keep them distinct for hashing clarity
        members.append(train_entity_model(sample, dev, replace(config, seed=seed), progress=progress))
    return members
