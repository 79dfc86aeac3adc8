"""Entity (span) models: training, prediction, uncertainty and versioned model directories.

Modules: ``config`` (TrainConfig, default labels from the schema), ``spans`` (training-span
policy, hashing, boundary tidying), ``decode`` (constrained Viterbi), ``tokenizer`` (the fine
tokenizer), ``base`` (the shared interface and model directory), one module per kind
(``spacy_model``, ``transformer_model``, ``ensemble``), ``training`` (early stopping),
``evaluate`` and ``train``. Loading any kind and the version registry live in
:mod:`clinical_nlp.models.registry`.

Two kinds share one interface (:class:`EntityModel`):

* ``"spacy"`` — a fast spaCy BIO tagger (CNN tok2vec) over a fine-grained
  tokenizer that splits every punctuation character and letter/digit
  boundaries (Chia's spans start and end at ``/``, ``-``, ``(`` …). Seconds to
  a minute on 50–200 short notes: retrained every active-learning round.
* ``"transformer"`` — a token classifier fine-tuned from the packaged
  all-MiniLM-L6-v2 (or any local Hugging Face directory), BIO tags on word
  pieces, long notes cut into overlapping windows.

Both decode spans with a constrained Viterbi over the per-token tag
probabilities (``I-X`` only after ``B-X``/``I-X``), and expose those
probabilities (:meth:`EntityModel.token_probabilities`) for least-confidence,
margin and entropy queries, with Monte-Carlo dropout when ``mc_dropout > 0``.

Span policy for training data (a tagger needs one label per token):

* spans whose label is not in ``TrainConfig.labels`` are ignored;
* a discontinuous span is trained as its **outer bounds** ``[start, end)``;
* overlapping or nested spans: the **longest** span is kept, ties go to the
  label listed first in ``TrainConfig.labels``, then the earlier start; the
  others are dropped (counted in ``model.json`` under ``span_policy``).

A model directory holds ``model.json`` (version, kind, labels, tags,
training-data hash, guideline version, parent version, config),
``metrics.json`` (dev strict/overlap P/R/F1, micro and per label, history)
and the weights (``spacy/`` or ``transformer/``).

Example:
    >>> from clinical_nlp.types import AnnotatedNote, Note, Span
    >>> doc = AnnotatedNote(Note("n1", "No fever today"), (Span(3, 8, "Condition", "fever"),))
    >>> model = train_entity_model([doc] * 4, None, TrainConfig(epochs=2), progress=False)
    >>> model.kind
    'spacy'
"""

from clinical_nlp.errors import ModelError
from clinical_nlp.models.embeddings import default_transformer_dir
from clinical_nlp.models.entities.base import EntityModel, read_model_meta
from clinical_nlp.models.entities.config import (
    DEFAULT_LABELS,
    FORMAT_VERSION,
    METRICS_FILE,
    MODEL_FILE,
    TrainConfig,
    bio_tags,
)
from clinical_nlp.models.entities.decode import decode_spans, viterbi_bio
from clinical_nlp.models.entities.ensemble import EnsembleEntityModel, project_piece_probs
from clinical_nlp.models.entities.evaluate import evaluate_entity_model
from clinical_nlp.models.entities.spacy_model import SpacyEntityModel, install_minilm_vectors
from clinical_nlp.models.entities.spans import (
    PolicyStats,
    data_hash,
    split_note_lines,
    tidy_boundaries,
    training_spans,
)
from clinical_nlp.models.entities.tokenizer import fine_token_offsets
from clinical_nlp.models.entities.train import train_committee, train_entity_model
from clinical_nlp.models.entities.training import BestEpoch
from clinical_nlp.models.entities.transformer_model import TransformerEntityModel
from clinical_nlp.models.registry import list_models, load_entity_model, register_model

__all__ = [
    "DEFAULT_LABELS",
    "FORMAT_VERSION",
    "METRICS_FILE",
    "MODEL_FILE",
    "BestEpoch",
    "EnsembleEntityModel",
    "EntityModel",
    "ModelError",
    "PolicyStats",
    "SpacyEntityModel",
    "TrainConfig",
    "TransformerEntityModel",
    "bio_tags",
    "data_hash",
    "decode_spans",
    "default_transformer_dir",
    "evaluate_entity_model",
    "fine_token_offsets",
    "install_minilm_vectors",
    "list_models",
    "load_entity_model",
    "project_piece_probs",
    "read_model_meta",
    "register_model",
    "split_note_lines",
    "tidy_boundaries",
    "train_committee",
    "train_entity_model",
    "training_spans",
    "viterbi_bio",
]
