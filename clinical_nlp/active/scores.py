"""Uncertainty scores, their aggregation, budgeted and diverse selection: the strategies' arithmetic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from clinical_nlp.errors import ConfigError
from clinical_nlp.types import AnnotatedNote, Note

Aggregate = Literal["mean", "max", "sum"]
EPS = 1e-12


@runtime_checkable
class TokenProbabilityModel(Protocol):
    """What uncertainty strategies need from a model."""

    def token_probabilities(self, notes: Sequence[Note], mc_dropout: int = 0) -> list[np.ndarray]: ...


#: ``train_fn(docs, seed) -> model`` builds a committee member on a bootstrap sample.
TrainFn = Callable[[Sequence[AnnotatedNote], int], TokenProbabilityModel]
#: ``embed(texts) -> (n, dim)`` array.
EmbedFn = Callable[[list[str]], np.ndarray]


# --------------------------------------------------------------------------- helpers
def as_note(item: AnnotatedNote | Note) -> Note:
    return item.note if isinstance(item, AnnotatedNote) else item


def check_args(pool: Sequence[Any], unlabeled_idx: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    if n < 0:
        raise ValueError(f"cannot query a negative number of items ({n})")
    idx = np.asarray(unlabeled_idx, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= len(pool)):
        bad = int(idx[(idx < 0) | (idx >= len(pool))][0])
        raise ValueError(f"unlabeled index {bad} is outside the pool of {len(pool)} items")
    if len(np.unique(idx)) != idx.size:
        raise ValueError("unlabeled_idx contains duplicate indices")
    return idx


def normalise(probs: np.ndarray) -> np.ndarray:
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
    p = normalise(p)
    return 1.0 - p.max(axis=1) if p.size else np.zeros(0)


def token_margin(p: np.ndarray) -> np.ndarray:
    """``1 - (p_best - p_second)`` per token (high = uncertain)."""
    p = normalise(p)
    if not p.size:
        return np.zeros(0)
    if p.shape[1] < 2:
        return np.zeros(p.shape[0])
    top = np.sort(p, axis=1)[:, -2:]
    return 1.0 - (top[:, 1] - top[:, 0])


def token_entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) per token."""
    p = normalise(p)
    if not p.size:
        return np.zeros(0)
    return -(p * np.log(p + EPS)).sum(axis=1)


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


def top_n(candidates: np.ndarray, scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
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


def check_budget(budget: float | None) -> None:
    if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
        raise ConfigError(f"budget must be a positive number (share of a random batch's cost), got {budget!r}")


def expected_edits(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Per note, the expected token errors of its pre-annotation: sum of ``1 - max p``."""
    return np.array([float(token_least_confidence(p).sum()) if len(p) else 0.0 for p in probs])


def within_budget(
    idx: np.ndarray, benefit: np.ndarray, cost: np.ndarray, n: int, budget: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` of ``idx`` maximising summed ``benefit`` with summed ``cost`` at most ``budget`` x an
    average batch's (``n`` x mean cost); ties broken at random (seeded), as in :func:`top_n`."""
    order = rng.permutation(idx.size)
    limit = budget * min(n, idx.size) * float(cost.mean())
    return idx[order[budgeted_top_n(benefit[order], cost[order], n, limit)]]


def k_center_greedy(
    embeddings: np.ndarray,
    candidate_rows: np.ndarray,
    center_rows: np.ndarray,
    n: int,
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
            block = centres[start : start + 512]
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
