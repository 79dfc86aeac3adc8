"""Agreement metrics over the long frame (``item``, ``annotator``, ``unit``, ``label``[, ``score``]).

Every metric returns an :class:`Agreement`: a value (``None`` with a ``reason``
when undefined, e.g. a single category), an optional seeded bootstrap
confidence interval, and the number of units it used. The same functions serve
text spans, imaging regions and signal events: the adapters only build frames.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"item": ["a", "a", "b", "b"], "annotator": ["x", "y", "x", "y"],
    ...                    "unit": ["u", "u", "u", "u"], "label": ["P", "P", "N", "N"]})
    >>> cohen_kappa(df).value
    1.0
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from clinical_nlp.errors import ClinicalNLPError

COLUMNS = ("item", "annotator", "unit", "label")
Level = Literal["nominal", "ordinal", "interval"]


class ConsensusError(ClinicalNLPError):
    """Bad input to the consensus core (missing columns, duplicates, empty frames)."""


@dataclass(frozen=True)
class Agreement:
    """One agreement figure: ``value`` is ``None`` when undefined (``reason`` says why)."""

    value: float | None
    ci: tuple[float, float] | None = None
    n: int = 0
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "n": self.n}
        if self.ci is not None:
            out["ci95"] = list(self.ci)
        if self.reason:
            out["reason"] = self.reason
        out.update(self.extra)
        return out


def validate_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Check the long-frame contract; returns a copy with string keys (never mutates ``df``)."""
    if not isinstance(df, pd.DataFrame):
        raise ConsensusError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ConsensusError(f"label frame is missing column(s) {missing}; needs {list(COLUMNS)}")
    out = df.copy()
    for c in ("item", "annotator", "unit"):
        out[c] = out[c].astype(str)
    dup = out.duplicated(["item", "unit", "annotator"])
    if dup.any():
        row = out[dup].iloc[0]
        raise ConsensusError(
            f"annotator {row['annotator']!r} labels unit {row['unit']!r} of item {row['item']!r} more than once"
        )
    return out


def wide(df: pd.DataFrame) -> pd.DataFrame:
    """Units as rows (``item``, ``unit``), annotators as columns, labels as cells (NaN = not rated)."""
    df = validate_frame(df)
    return df.pivot(index=["item", "unit"], columns="annotator", values="label")


def _bootstrap(
    stat: Callable[[np.ndarray], float | None], n_units: int, *, n_boot: int, seed: int, alpha: float = 0.05
) -> tuple[float, float] | None:
    if n_boot <= 0 or n_units < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        v = stat(rng.integers(0, n_units, n_units))
        if v is not None and not math.isnan(v):
            values.append(v)
    if len(values) < max(10, n_boot // 4):
        return None
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def kappa_of_arrays(
    a: np.ndarray, b: np.ndarray, weights: str | None = None, labels: list[int] | None = None
) -> float | None:
    """Cohen's kappa of two aligned label arrays; None when fewer than two categories occur."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) == 0 or len(set(a.tolist()) | set(b.tolist())) < 2:
        return None
    with np.errstate(all="ignore"):
        v = float(cohen_kappa_score(a, b, weights=weights, labels=labels))
    return None if math.isnan(v) else v


def _encode(values: pd.Series, order: Sequence[Any] | None) -> np.ndarray:
    if order is not None:
        index = {v: i for i, v in enumerate(order)}
        unknown = set(values.dropna()) - set(index)
        if unknown:
            raise ConsensusError(f"labels {sorted(map(str, unknown))} are not in the given order {list(order)}")
        return values.map(index).to_numpy(dtype=float)
    return values.to_numpy()


def cohen_kappa(
    df: pd.DataFrame,
    a: str | None = None,
    b: str | None = None,
    *,
    weights: Literal["linear", "quadratic"] | None = None,
    order: Sequence[Any] | None = None,
    n_boot: int = 0,
    seed: int = 0,
) -> Agreement:
    """Cohen's kappa between two annotators over the units both rated (weighted kappa needs ``order``)."""
    w = wide(df)
    names = list(w.columns)
    if a is None or b is None:
        if len(names) != 2:
            return Agreement(None, n=0, reason=f"Cohen's kappa needs exactly two annotators, got {len(names)}")
        a, b = names
    for x in (a, b):
        if x not in names:
            raise ConsensusError(f"annotator {x!r} is not in the frame (have {names})")
    both = w[[a, b]].dropna()
    if both.empty:
        return Agreement(None, n=0, reason=f"{a} and {b} share no units")
    if weights is not None:
        if order is None:
            order = sorted(set(both[a]) | set(both[b]))
        xa, xb = _encode(both[a], order).astype(int), _encode(both[b], order).astype(int)
        scale: list[int] | None = list(range(len(order)))
    else:
        xa, xb = both[a].astype(str).to_numpy(), both[b].astype(str).to_numpy()
        scale = None
    v = kappa_of_arrays(xa, xb, weights, scale)
    if v is None:
        return Agreement(None, n=len(both), reason="a single category was used: kappa is undefined")
    ci = _bootstrap(lambda idx: kappa_of_arrays(xa[idx], xb[idx], weights, scale), len(xa), n_boot=n_boot, seed=seed)
    return Agreement(v, ci, len(both))


def pairwise_cohen_kappa(df: pd.DataFrame, **kwargs: Any) -> dict[tuple[str, str], Agreement]:
    """Cohen's kappa for every annotator pair (sorted names)."""
    names = sorted(validate_frame(df)["annotator"].unique())
    return {(a, b): cohen_kappa(df, a, b, **kwargs) for a, b in itertools.combinations(names, 2)}


def mean_pairwise(results: Iterable[Agreement]) -> Agreement:
    """Average of the defined values (``None`` with a reason when none is defined)."""
    results = list(results)
    vals = [r.value for r in results if r.value is not None]
    if not vals:
        reason = "; ".join(sorted({r.reason or "" for r in results})) or "no annotator pairs"
        return Agreement(None, n=0, reason=reason)
    return Agreement(float(np.mean(vals)), n=sum(r.n for r in results), extra={"pairs": len(vals)})


def percent_agreement(df: pd.DataFrame, *, n_boot: int = 0, seed: int = 0) -> Agreement:
    """Share of agreeing annotator pairs over units rated by two or more annotators."""
    df = validate_frame(df)
    counts = pd.crosstab([df["item"], df["unit"]], df["label"].astype(str)).to_numpy(dtype=float)
    n = counts.sum(axis=1)
    keep = n >= 2
    if not keep.any():
        return Agreement(None, reason="no unit was rated by two or more annotators")
    per_unit = np.c_[(counts[keep] * (counts[keep] - 1) / 2).sum(axis=1), n[keep] * (n[keep] - 1) / 2]
    arr = per_unit

    def stat(idx):
        return float(arr[idx, 0].sum() / arr[idx, 1].sum())

    return Agreement(stat(np.arange(len(arr))), _bootstrap(stat, len(arr), n_boot=n_boot, seed=seed), len(arr))


def _fleiss(table: np.ndarray) -> float | None:
    from statsmodels.stats.inter_rater import fleiss_kappa

    if table.shape[0] == 0 or (table.sum(axis=0) > 0).sum() < 2:
        return None
    with np.errstate(all="ignore"):
        v = float(fleiss_kappa(table, method="fleiss"))
    return None if math.isnan(v) else v


def fleiss_kappa(df: pd.DataFrame, *, n_boot: int = 0, seed: int = 0) -> Agreement:
    """Fleiss' kappa (statsmodels) over units rated by the most common number of annotators (>= 2)."""
    df = validate_frame(df)
    table_all = pd.crosstab([df["item"], df["unit"]], df["label"].astype(str))
    counts = table_all.sum(axis=1)
    if counts.empty or counts.max() < 2:
        return Agreement(None, reason="no unit was rated by two or more annotators")
    k = int(counts[counts >= 2].mode().iloc[0])
    table = table_all[counts == k].to_numpy(dtype=float)
    sub = table
    v = _fleiss(table)
    if v is None:
        return Agreement(None, n=len(sub), reason="a single category was used: kappa is undefined")
    ci = _bootstrap(lambda idx: _fleiss(table[idx]), len(table), n_boot=n_boot, seed=seed)
    return Agreement(v, ci, len(sub), extra={"raters_per_unit": k})


def _alpha(data: np.ndarray, level: str, domain: Sequence[float] | None = None) -> float | None:
    import krippendorff

    vals = data[~np.isnan(data)]
    pairable = (np.sum(~np.isnan(data), axis=0) >= 2).sum()
    if pairable == 0 or len(np.unique(vals)) < 2:
        return None
    with np.errstate(all="ignore"):
        v = float(
            krippendorff.alpha(
                reliability_data=data,
                level_of_measurement=level,  # type: ignore[arg-type]
                value_domain=domain,
            )
        )
    return None if math.isnan(v) else v


def krippendorff_alpha(
    df: pd.DataFrame, *, level: Level = "nominal", order: Sequence[Any] | None = None, n_boot: int = 0, seed: int = 0
) -> Agreement:
    """Krippendorff's alpha (``krippendorff`` package); ordinal/interval labels follow ``order`` or sort order."""
    w = wide(df)
    if w.shape[1] < 2:
        return Agreement(None, n=len(w), reason=f"alpha needs two or more annotators, got {w.shape[1]}")
    stacked = w.stack().dropna()
    if order is None:
        if level == "nominal":
            order = sorted({str(v) for v in stacked})
            w = w.map(lambda v: v if pd.isna(v) else str(v))
        else:
            order = sorted(set(stacked))
    index = {v: i for i, v in enumerate(order)}
    domain: list[float] | None = None
    if level == "interval" and all(isinstance(v, (int, float, np.number)) for v in order):
        data = w.to_numpy(dtype=float).T
    else:
        data = w.apply(lambda col: col.map(index)).to_numpy(dtype=float).T  # raters x units
        domain = [float(i) for i in range(len(order))]
    v = _alpha(data, level, domain)
    if v is None:
        return Agreement(None, n=w.shape[0], reason="fewer than two categories or no pairable units: alpha undefined")
    ci = _bootstrap(lambda idx: _alpha(data[:, idx], level, domain), data.shape[1], n_boot=n_boot, seed=seed)
    return Agreement(v, ci, w.shape[0])


def per_label(df: pd.DataFrame, metric: Callable[..., Agreement], **kwargs: Any) -> dict[str, Agreement]:
    """``metric`` restricted to the units whose label set contains each label (one-vs-rest presence)."""
    df = validate_frame(df)
    out = {}
    for label in sorted(df["label"].astype(str).unique()):
        sub = df.assign(label=(df["label"].astype(str) == label).map({True: label, False: "other"}))
        out[label] = metric(sub, **kwargs)
    return out


# regions -------------------------------------------------------------------------
def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of the same shape (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ConsensusError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ConsensusError(f"mask shapes differ: {a.shape} vs {b.shape}")
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two axis-aligned boxes ``(min_0.., max_0..)`` in any dimension (2D: x0, y0, x1, y1)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if x.shape != y.shape or x.size % 2:
        raise ConsensusError(f"boxes must have the same even length, got {x.tolist()} and {y.tolist()}")
    d = x.size // 2
    lo, hi = np.maximum(x[:d], y[:d]), np.minimum(x[d:], y[d:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    va, vb = float(np.prod(x[d:] - x[:d])), float(np.prod(y[d:] - y[:d]))
    union = va + vb - inter
    return 1.0 if union <= 0 else inter / union


def summarize(
    values: Sequence[float], *, n_boot: int = 1000, seed: int = 0, threshold: float | None = None
) -> Agreement:
    """Mean of per-unit scores (IoU, Dice…) with a seeded bootstrap CI, median and share above ``threshold``."""
    arr = np.asarray(list(values), float)
    if arr.size == 0:
        return Agreement(None, reason="no scores")
    extra: dict[str, Any] = {"median": float(np.median(arr))}
    if threshold is not None:
        extra["share_above"] = float((arr > threshold).mean())
        extra["threshold"] = threshold
    ci = _bootstrap(lambda idx: float(arr[idx].mean()), arr.size, n_boot=n_boot, seed=seed)
    return Agreement(float(arr.mean()), ci, int(arr.size), extra=extra)
