"""Learned models: entity taggers (spaCy, transformer), their registry, and note embeddings."""

from clinical_nlp.models.embeddings import embed
from clinical_nlp.models.entities import (
    DEFAULT_LABELS,
    EntityModel,
    ModelError,
    TrainConfig,
    evaluate_entity_model,
    list_models,
    load_entity_model,
    train_committee,
    train_entity_model,
)

__all__ = [
    "DEFAULT_LABELS",
    "EntityModel",
    "ModelError",
    "TrainConfig",
    "embed",
    "evaluate_entity_model",
    "list_models",
    "load_entity_model",
    "train_committee",
    "train_entity_model",
]
