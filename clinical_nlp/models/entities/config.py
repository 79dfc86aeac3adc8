"""Training settings, label defaults (from the label schema) and the model directory's file names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from clinical_nlp.config import load_label_schema
from clinical_nlp.errors import ConfigError

#: the labels the entity models learn by default: the schema's ``pre_annotate`` labels
DEFAULT_LABELS: tuple[str, ...] = load_label_schema().model_labels
MODEL_FILE = "model.json"
METRICS_FILE = "metrics.json"
FORMAT_VERSION = 1
ModelKind = Literal["spacy", "transformer", "ensemble"]
TokenizerKind = Literal["fine", "default"]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (stored in ``model.json``).

    Attributes:
        kind: ``"spacy"`` (fast tagger), ``"transformer"`` (MiniLM token classifier) or
            ``"ensemble"`` (both, trained one after the other; their tag probabilities are
            averaged on the spaCy token grid, then Viterbi-decoded).
        labels: entity labels to learn; other labels in the data are ignored.
        epochs: maximum passes over the training data.
        seed: random seed (data order, initialisation, bootstrap samples).
        dropout: dropout during training.
        patience: stop after this many epochs without dev improvement (0: never stop early).
        base_model: warm start from this model directory (same kind) or, for the
            transformer, from a Hugging Face directory; ``None``: spaCy from scratch,
            transformer from the packaged MiniLM.
        batch_size: notes (spaCy) or windows (transformer) per update.
        learning_rate: optimizer step size (``None``: kind default).
        max_length: transformer window length in word pieces.
        stride: word pieces shared by consecutive windows.
        width / depth: spaCy CNN tok2vec width and depth.
        max_steps: stop after this many updates (0: no limit; for tests and smoke runs).
        spacy_ner: spaCy kind only: spans come from a transition-based NER trained beside the BIO
            tagger (more accurate boundaries); the tagger still gives the token probabilities.
            ``False``: spans are decoded from the tagger alone.
        tokenizer: spaCy kind only: ``"fine"`` splits letter runs, digit runs and each punctuation
            character (``HbA1c`` -> ``HbA 1 c``; every Chia boundary falls on a token edge);
            ``"default"`` is spaCy's English rule tokenizer (whole words: richer hashed features;
            a gold boundary inside a token is widened to the token).
        static_vectors: spaCy kind only: give the CNN static word vectors derived from the packaged
            MiniLM's word-piece embedding table (a word's vector = mean of its pieces' input
            embeddings; table keyed by lower-cased form, covering the MiniLM vocabulary and the
            training words). Pre-trained lexical knowledge at no run-time cost beyond a lookup.
        vector_dims: spaCy kind only: keep this many principal components of the static vectors
            (``0``: all 384); 128 keeps a shippable model small (the table is most of its size).
        transformer_epochs / transformer_learning_rate: ensemble kind only: the transformer
            member's epochs and learning rate (the spaCy member uses ``epochs`` etc.).
        ensemble_weight: ensemble kind only: weight of the transformer's probabilities
            (``None``: chosen on the dev set from 0.3-0.8, else 0.6).
        split_lines: spaCy kind only: train on the non-empty lines of each note (criteria lists,
            problem lists) so each epoch has many more, shorter updates; a span crossing a line
            break stays whole (its lines are kept together).
    """

    kind: ModelKind = "spacy"
    labels: tuple[str, ...] = DEFAULT_LABELS
    epochs: int = 20
    seed: int = 0
    dropout: float = 0.2
    patience: int = 4
    base_model: Path | None = None
    batch_size: int = 16
    learning_rate: float | None = None
    max_length: int = 256
    stride: int = 64
    width: int = 128
    depth: int = 4
    max_steps: int = 0
    spacy_ner: bool = False
    split_lines: bool = False
    tokenizer: TokenizerKind = "default"
    static_vectors: bool = True
    vector_dims: int = 0
    transformer_epochs: int = 8
    transformer_learning_rate: float = 1e-4
    ensemble_weight: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("spacy", "transformer", "ensemble"):
            raise ConfigError(f"unknown model kind {self.kind!r} (use 'spacy', 'transformer' or 'ensemble')")
        if self.ensemble_weight is not None and not 0.0 <= self.ensemble_weight <= 1.0:
            raise ConfigError(f"ensemble_weight must be in [0, 1], got {self.ensemble_weight}")
        if not self.labels:
            raise ConfigError("at least one label is needed to train an entity model")
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"duplicate labels in {self.labels}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.tokenizer not in ("fine", "default"):
            raise ConfigError(f"unknown tokenizer {self.tokenizer!r} (use 'fine' or 'default')")
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.base_model is not None:
            object.__setattr__(self, "base_model", Path(self.base_model))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = list(self.labels)
        out["base_model"] = None if self.base_model is None else str(self.base_model)
        return out


def bio_tags(labels: Sequence[str]) -> tuple[str, ...]:
    """``("O", "B-L1", "I-L1", ...)`` for the labels, in order."""
    tags = ["O"]
    for label in labels:
        tags += [f"B-{label}", f"I-{label}"]
    return tuple(tags)
