"""Query strategies and their versioned registry (see the package docstring)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from clinical_nlp.active.scores import (
    EPS,
    Aggregate,
    EmbedFn,
    TokenProbabilityModel,
    TrainFn,
    aggregate_scores,
    as_note,
    check_args,
    check_budget,
    expected_edits,
    k_center_greedy,
    normalise,
    token_entropy,
    token_least_confidence,
    token_margin,
    top_n,
    within_budget,
)
from clinical_nlp.errors import ConfigError
from clinical_nlp.types import AnnotatedNote, Note

_REGISTRY: dict[str, type[QueryStrategy]] = {}


def register_strategy(name: str) -> Callable[[type[QueryStrategy]], type[QueryStrategy]]:
    """Class decorator: register a strategy under ``"<family>.v<N>"``."""
    if not re.fullmatch(r"[a-z_]+\.v\d+", name):
        raise ValueError(f"strategy names look like 'entropy.v1', got {name!r}")

    def deco(cls: type[QueryStrategy]) -> type[QueryStrategy]:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def resolve_name(name: str) -> str:
    """A versioned name for ``name`` (a plain family name gives its latest version)."""
    if name in _REGISTRY:
        return name
    versions = [k for k in _REGISTRY if k.split(".v")[0] == name]
    if not versions:
        raise ConfigError(f"unknown query strategy {name!r}; available: {', '.join(list_strategies())}")
    return max(versions, key=lambda k: int(k.rsplit(".v", 1)[1]))


def list_strategies() -> list[str]:
    """Registered versioned names, sorted."""
    return sorted(_REGISTRY)


def get_strategy(name: str, **config: Any) -> QueryStrategy:
    """Instantiate a registered strategy with its config keywords."""
    cls = _REGISTRY[resolve_name(name)]
    try:
        return cls(**config)
    except TypeError as exc:
        raise ConfigError(f"bad config for strategy {cls.name!r}: {exc}") from None


# --------------------------------------------------------------------------- strategies
class QueryStrategy:
    """Base class: subclasses implement :meth:`query`."""

    name: str = "base"
    needs_model: bool = True

    def query(
        self,
        model: Any,
        pool: Sequence[AnnotatedNote | Note],
        unlabeled_idx: Sequence[int] | np.ndarray,
        labeled_idx: Sequence[int] | np.ndarray,
        n: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return (self.__doc__ or "").strip().splitlines()[0]


@register_strategy("random.v1")
class RandomSampling(QueryStrategy):
    """Uniform random sample of the unlabeled notes (seeded baseline)."""

    needs_model = False

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):
        idx = check_args(pool, unlabeled_idx, n)
        n = min(n, idx.size)
        return rng.choice(idx, size=n, replace=False).astype(np.int64) if n else idx[:0]


@dataclass
class _ScoreStrategy(QueryStrategy):
    """Uncertainty sampling from per-token scores aggregated to a note."""

    aggregate: Aggregate = "mean"
    token_fn: Callable[[np.ndarray], np.ndarray] = field(default=token_entropy, repr=False)

    def __post_init__(self) -> None:
        if self.aggregate not in ("mean", "max", "sum"):
            raise ConfigError(f"unknown aggregation {self.aggregate!r}; use 'mean', 'max' or 'sum'")

    def scores(self, model: TokenProbabilityModel, notes: Sequence[Note]) -> np.ndarray:
        probs = model.token_probabilities(list(notes))
        return np.array([aggregate_scores(self.token_fn(p), self.aggregate) for p in probs])

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):
        idx = check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        s = self.scores(model, [as_note(pool[i]) for i in idx])
        return top_n(idx, s, n, rng)


@register_strategy("least_confidence.v1")
@dataclass
class LeastConfidence(_ScoreStrategy):
    """Least confidence: 1 - max tag probability per token, aggregated to the note."""

    token_fn: Callable[[np.ndarray], np.ndarray] = field(default=token_least_confidence, repr=False)


@register_strategy("margin.v1")
@dataclass
class Margin(_ScoreStrategy):
    """Smallest margin between the two most probable tags per token."""

    token_fn: Callable[[np.ndarray], np.ndarray] = field(default=token_margin, repr=False)


@register_strategy("entropy.v1")
@dataclass
class Entropy(_ScoreStrategy):
    """Token tag-distribution entropy, aggregated to the note."""

    token_fn: Callable[[np.ndarray], np.ndarray] = field(default=token_entropy, repr=False)


@register_strategy("mc_dropout.v1")
@dataclass
class MCDropout(QueryStrategy):
    """Monte-Carlo dropout (BALD mutual information) for the transformer model.

    Calls ``model.token_probabilities(notes, mc_dropout=1)`` ``passes`` times (one
    dropout-on forward pass each) and scores tokens by the mutual information
    between tags and passes: entropy of the mean minus mean per-pass entropy.
    """

    passes: int = 10
    aggregate: Aggregate = "mean"

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):
        idx = check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        if self.passes < 1:
            raise ConfigError("mc_dropout needs passes >= 1")
        notes = [as_note(pool[i]) for i in idx]
        # one stochastic pass per call (mc_dropout=1 is a single dropout-on forward pass)
        runs = [model.token_probabilities(notes, mc_dropout=1) for _ in range(self.passes)]
        scores = []
        for k in range(len(notes)):
            p = np.stack([np.asarray(r[k], dtype=np.float64) for r in runs])  # (passes, tokens, tags)
            if p.shape[1] == 0:
                scores.append(0.0)
                continue
            mean = p.mean(axis=0)
            per_pass = np.stack([token_entropy(x) for x in p]).mean(axis=0)
            mutual_info = np.clip(token_entropy(mean) - per_pass, 0, None)
            scores.append(aggregate_scores(mutual_info, self.aggregate))
        return top_n(idx, np.array(scores), n, rng)


def _vote_entropy(member_probs: list[np.ndarray]) -> np.ndarray:
    votes = np.stack([p.argmax(axis=1) for p in member_probs])  # (members, tokens)
    n_tags = member_probs[0].shape[1]
    counts = np.stack([(votes == t).sum(axis=0) for t in range(n_tags)], axis=1) / len(member_probs)
    return -(counts * np.log(counts + EPS)).sum(axis=1)


def _kl_to_mean(member_probs: list[np.ndarray]) -> np.ndarray:
    stack = np.stack(member_probs)  # (members, tokens, tags)
    mean = stack.mean(axis=0)
    kl = (stack * (np.log(stack + EPS) - np.log(mean + EPS)[None])).sum(axis=2)
    return kl.mean(axis=0)


@register_strategy("committee.v1")
@dataclass
class CommitteeDisagreement(QueryStrategy):
    """Query by committee: members trained on bootstrap samples of the labeled notes;
    disagreement by vote entropy (``measure="vote"``) or mean KL to consensus (``"kl"``).

    ``train_fn(docs, seed) -> model`` trains one member; the labeled notes must be
    :class:`AnnotatedNote` (gold spans). Members must share one tag set.

    With ``budget=b`` the batch maximises summed disagreement while the expected edits of
    the loop model's pre-annotation (sum of ``1 - max p`` plus 1 per note) stay within ``b``
    times an average batch's (as :class:`CostAware`; ``aggregate`` is then ignored).
    """

    train_fn: TrainFn | None = None
    members: int = 3
    measure: Literal["vote", "kl"] = "vote"
    aggregate: Aggregate = "mean"
    budget: float | None = None

    def __post_init__(self) -> None:
        check_budget(self.budget)

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):
        idx = check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        if self.train_fn is None:
            raise ConfigError("committee strategy needs train_fn(docs, seed) to train its members")
        if self.measure not in ("vote", "kl"):
            raise ConfigError(f"committee measure must be 'vote' or 'kl', got {self.measure!r}")
        lab = np.asarray(labeled_idx, dtype=np.int64)
        if lab.size == 0:
            raise ValueError("committee strategy needs at least one labeled note")
        notes = [as_note(pool[i]) for i in idx]
        per_member: list[list[np.ndarray]] = []
        for _m in range(self.members):
            sample = rng.choice(lab, size=lab.size, replace=True)
            member = self.train_fn([pool[i] for i in sample], int(rng.integers(2**31)))
            per_member.append([normalise(p) for p in member.token_probabilities(notes)])
        fn = _vote_entropy if self.measure == "vote" else _kl_to_mean
        how: Aggregate = "sum" if self.budget is not None else self.aggregate
        scores = []
        for k in range(len(notes)):
            probs = [per_member[m][k] for m in range(self.members)]
            scores.append(0.0 if probs[0].shape[0] == 0 else aggregate_scores(fn(probs), how))
        if self.budget is None:
            return top_n(idx, np.array(scores), n, rng)
        cost = expected_edits(model.token_probabilities(notes)) + 1.0
        return within_budget(idx, np.array(scores), cost, n, self.budget, rng)


def default_embed(texts: list[str]) -> np.ndarray:
    """Note embeddings from the packaged MiniLM (:func:`clinical_nlp.models.embeddings.embed`)."""
    from clinical_nlp.models.embeddings import embed

    return np.asarray(embed(texts))


class _EmbeddingCache:
    def __init__(self, embed: EmbedFn | None):
        self._embed = embed
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    def __call__(self, notes: Sequence[Note]) -> np.ndarray:
        if self._embed is None:
            self._embed = default_embed  # packaged MiniLM, loaded lazily
        missing = [x for x in notes if (x.id, hash(x.text)) not in self._cache]
        if missing:
            vecs = np.asarray(self._embed([x.text for x in missing]), dtype=np.float64)
            if vecs.shape[0] != len(missing):
                raise ValueError(f"embed() returned {vecs.shape[0]} vectors for {len(missing)} texts")
            for x, v in zip(missing, vecs, strict=True):
                self._cache[(x.id, hash(x.text))] = v
        return np.stack([self._cache[(x.id, hash(x.text))] for x in notes]) if notes else np.zeros((0, 1))

    def diverse(
        self,
        pool: Sequence[AnnotatedNote | Note],
        candidates: np.ndarray,
        labeled_idx: Sequence[int],
        n: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """``n`` of ``candidates`` (pool indices) by k-center greedy, the labeled notes as centres."""
        lab = np.asarray(labeled_idx, dtype=np.int64)
        rows = np.concatenate([candidates, lab])
        emb = self([as_note(pool[i]) for i in rows])
        return candidates[
            k_center_greedy(emb, np.arange(candidates.size), np.arange(candidates.size, rows.size), n, rng)
        ]


@register_strategy("kcenter.v1")
class KCenterGreedy(QueryStrategy):
    """Diversity: k-center greedy on note embeddings (packaged MiniLM by default),
    with the labeled notes as initial centres."""

    needs_model = False

    def __init__(self, embed: EmbedFn | None = None):
        self.embed = _EmbeddingCache(embed)

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):
        idx = check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        return self.embed.diverse(pool, idx, labeled_idx, n, rng)


@register_strategy("hybrid.v1")
class Hybrid(QueryStrategy):
    """Uncertainty then diversity: the ``oversample * n`` most uncertain notes
    (``uncertainty`` strategy), thinned to ``n`` by k-center greedy on embeddings."""

    def __init__(
        self,
        uncertainty: str = "entropy",
        oversample: float = 3.0,
        aggregate: Aggregate = "mean",
        embed: EmbedFn | None = None,
    ):
        if oversample < 1:
            raise ConfigError("hybrid oversample must be >= 1")
        self.uncertainty = get_strategy(uncertainty, aggregate=aggregate)
        if not isinstance(self.uncertainty, _ScoreStrategy):
            raise ConfigError(f"hybrid needs an uncertainty strategy, got {uncertainty!r}")
        self.oversample = oversample
        self.embed = _EmbeddingCache(embed)

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):
        idx = check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        m = min(idx.size, max(n, int(math.ceil(self.oversample * n))))
        shortlist = self.uncertainty.query(model, pool, idx, labeled_idx, m, rng)
        return self.embed.diverse(pool, shortlist, labeled_idx, n, rng)


@register_strategy("cost_aware.v1")
@dataclass
class CostAware(QueryStrategy):
    """Expected benefit per unit of expected annotation cost.

    Benefit = summed token uncertainty (``uncertainty`` family: entropy, margin or
    least confidence). Cost = ``"edits"``: expected token errors of the
    pre-annotation (sum of ``1 - max p``) plus ``base_cost`` per note (reading it);
    or ``"length"``: number of tokens (plus ``base_cost``).

    Without ``budget`` notes are ranked by benefit / cost. With ``budget=b`` the batch
    maximises summed benefit while its summed cost stays within ``b`` times that of an
    average batch (``n`` x the mean cost of the unlabeled notes: what a random batch
    costs in expectation), via :func:`budgeted_top_n`. ``budget=1`` asks for the most
    uncertainty that a random batch's expected edits can buy.
    """

    uncertainty: Literal["entropy", "margin", "least_confidence"] = "entropy"
    cost: Literal["edits", "length"] = "edits"
    base_cost: float = 1.0
    budget: float | None = None

    def __post_init__(self) -> None:
        if self.cost not in ("edits", "length"):
            raise ConfigError(f"cost must be 'edits' or 'length', got {self.cost!r}")
        if self.base_cost <= 0:
            raise ConfigError("base_cost must be positive")
        check_budget(self.budget)
        fn = {"entropy": token_entropy, "margin": token_margin, "least_confidence": token_least_confidence}.get(
            self.uncertainty
        )
        if fn is None:
            raise ConfigError(f"unknown uncertainty {self.uncertainty!r}")
        self._fn: Callable[[np.ndarray], np.ndarray] = fn

    def benefit_and_cost(self, model: TokenProbabilityModel, notes: Sequence[Note]) -> tuple[np.ndarray, np.ndarray]:
        probs = model.token_probabilities(list(notes))
        benefit = np.array([float(self._fn(p).sum()) if len(p) else 0.0 for p in probs])
        if self.cost == "edits":
            cost = expected_edits(probs)
        else:
            cost = np.array([float(len(p)) for p in probs])
        return benefit, cost + self.base_cost

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):
        idx = check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        benefit, cost = self.benefit_and_cost(model, [as_note(pool[i]) for i in idx])
        if self.budget is None:
            return top_n(idx, benefit / cost, n, rng)
        return within_budget(idx, benefit, cost, n, self.budget, rng)
