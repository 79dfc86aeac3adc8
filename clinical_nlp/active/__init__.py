"""Active-learning query strategies: pick the notes that most need an expert.

A strategy has one narrow method (in the style of small-text)::

    query(model, pool, unlabeled_idx, labeled_idx, n, rng) -> np.ndarray

It returns ``n`` distinct *indices into* ``pool`` taken from ``unlabeled_idx``
(fewer only when fewer are unlabeled), never copies of the notes. ``model`` is
any object with ``token_probabilities(notes, mc_dropout=0)`` returning, per
note, an array ``(n_tokens, n_tags)`` of tag probabilities (the protocol of
``clinical_nlp.models.entities.EntityModel``); ``random`` needs no model.

Strategies are registered under versioned names (``"entropy.v1"``); a plain
name (``"entropy"``) resolves to the latest version::

    >>> s = get_strategy("random")
    >>> s.name
    'random.v1'

Token scores are aggregated to a note by ``mean``, ``max`` or ``sum``
(``aggregate=`` in the strategy config). A note without tokens scores 0.
"""

from clinical_nlp.active.scores import (
    Aggregate,
    EmbedFn,
    TokenProbabilityModel,
    TrainFn,
    aggregate_scores,
    budgeted_top_n,
    k_center_greedy,
    token_entropy,
    token_least_confidence,
    token_margin,
)
from clinical_nlp.active.strategies import (
    _REGISTRY,
    CommitteeDisagreement,
    CostAware,
    Entropy,
    Hybrid,
    KCenterGreedy,
    LeastConfidence,
    Margin,
    MCDropout,
    QueryStrategy,
    RandomSampling,
    default_embed,
    get_strategy,
    list_strategies,
    register_strategy,
    resolve_name,
)

__all__ = [
    "_REGISTRY",
    "Aggregate",
    "CommitteeDisagreement",
    "CostAware",
    "EmbedFn",
    "Entropy",
    "Hybrid",
    "KCenterGreedy",
    "LeastConfidence",
    "MCDropout",
    "Margin",
    "QueryStrategy",
    "RandomSampling",
    "TokenProbabilityModel",
    "TrainFn",
    "aggregate_scores",
    "budgeted_top_n",
    "default_embed",
    "get_strategy",
    "k_center_greedy",
    "list_strategies",
    "register_strategy",
    "resolve_name",
    "token_entropy",
    "token_least_confidence",
    "token_margin",
]
