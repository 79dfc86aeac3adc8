"""Aggregation of the long frame into one label per (item, unit): majority vote and Dawid-Skene (crowd-kit).

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"item": ["a"] * 3, "annotator": ["x", "y", "z"], "unit": ["u"] * 3,
    ...                    "label": ["P", "P", "N"]})
    >>> aggregate(df, method="majority").result.loc[("a", "u")]
    'P'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import pandas as pd

from clinical_nlp.consensus.agreement import ConsensusError, validate_frame
from clinical_nlp.metrics import PRF

Method = Literal["majority", "dawid_skene"]


@dataclass(frozen=True)
class Aggregation:
    """``result``: label per (item, unit); ``reliability``: per-annotator skill estimate in [0, 1]."""

    result: pd.Series
    reliability: pd.Series
    method: str


def _tasks(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Index]:
    keys = pd.MultiIndex.from_frame(df[["item", "unit"]])
    codes, uniques = pd.factorize(keys)
    return pd.DataFrame({"task": codes, "worker": df["annotator"].to_numpy(), "label": df["label"].to_numpy()}), uniques


def aggregate(df: pd.DataFrame, *, method: Method = "majority", n_iter: int = 100, seed: int = 0) -> Aggregation:
    """Aggregate with crowd-kit's ``MajorityVote`` or ``DawidSkene``.

    Reliability is crowd-kit's MV skill (agreement with the majority) for ``majority`` and the
    expected accuracy from the Dawid-Skene confusion matrices (diagonal weighted by the class priors)
    for ``dawid_skene``. Ties in majority vote are broken by crowd-kit (deterministic with ``seed``).
    """
    from crowdkit.aggregation import DawidSkene, MajorityVote

    df = validate_frame(df)
    if df.empty:
        raise ConsensusError("cannot aggregate an empty label frame")
    tasks, keys = _tasks(df)
    if method == "majority":
        vote = MajorityVote(default_skill=None)
        np.random.seed(seed)
        labels = vote.fit_predict(tasks)
        reliability = cast(pd.Series, vote.skills_).astype(float)  # set by fit_predict
    elif method == "dawid_skene":
        ds = DawidSkene(n_iter=n_iter)
        labels = ds.fit_predict(tasks)
        errors = cast(pd.DataFrame, ds.errors_)  # index (worker, label), columns true label: P(observed | true)
        priors = cast(pd.Series, ds.priors_)
        rel = {}
        for worker in errors.index.get_level_values(0).unique():
            m = errors.loc[worker]
            rel[worker] = float(sum(priors.get(c, 0.0) * m.loc[c, c] for c in m.columns if c in m.index))
        reliability = pd.Series(rel, dtype=float)
    else:
        raise ConsensusError(f"unknown aggregation method {method!r} (use 'majority' or 'dawid_skene')")
    labels = labels.sort_index()
    result = pd.Series(labels.to_numpy(), index=keys[labels.index.to_numpy()], name="label")
    result.index.names = ["item", "unit"]
    reliability.index.name = "annotator"
    return Aggregation(result.sort_index(), reliability.sort_index(), method)


def detection_prf(n_a: int, n_b: int, n_matched: int) -> PRF:
    """Agreement between two annotators' unit sets as P/R/F1 (``a`` is the reference).

    The same function scores text spans, imaging regions and signal events once matched.
    """
    if n_matched > min(n_a, n_b) or n_matched < 0:
        raise ConsensusError(f"{n_matched} matches cannot come from {n_a} and {n_b} units")
    return PRF(n_matched, n_b - n_matched, n_a - n_matched)
