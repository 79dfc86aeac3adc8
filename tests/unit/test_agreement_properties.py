"""Property tests: agreement metrics are bounded, symmetric, 1.0 for identical annotators and match
scikit-learn / statsmodels / krippendorff on random inputs."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from clinical_nlp.consensus import (
    box_iou,
    cohen_kappa,
    dice,
    fleiss_kappa,
    iou,
    krippendorff_alpha,
    percent_agreement,
)

SETTINGS = settings(max_examples=40, deadline=None)

labels_lists = st.integers(2, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 3), min_size=n, max_size=n), st.lists(st.integers(0, 3), min_size=n, max_size=n)
    )
)


def frame(*raters):
    rows = []
    for r, values in enumerate(raters):
        for i, v in enumerate(values):
            if v is not None:
                rows.append({"item": f"i{i}", "annotator": f"r{r}", "unit": "u", "label": v})
    return pd.DataFrame(rows, columns=["item", "annotator", "unit", "label"])


@SETTINGS
@given(labels_lists)
def test_cohen_kappa_matches_sklearn_and_is_symmetric(pair):
    a, b = pair
    ours = cohen_kappa(frame(a, b), "r0", "r1")
    back = cohen_kappa(frame(a, b), "r1", "r0")
    if len(set(a) | set(b)) < 2:
        assert ours.value is None and "single category" in ours.reason
        return
    ref = cohen_kappa_score([str(x) for x in a], [str(x) for x in b])
    assert ours.value == pytest.approx(ref, abs=1e-9)
    assert back.value == pytest.approx(ours.value, abs=1e-12)
    assert -1 <= ours.value <= 1


@SETTINGS
@given(labels_lists)
def test_weighted_kappa_matches_sklearn(pair):
    a, b = pair
    if len(set(a) | set(b)) < 2:
        return
    ours = cohen_kappa(frame(a, b), "r0", "r1", weights="quadratic", order=[0, 1, 2, 3])
    ref = cohen_kappa_score(a, b, weights="quadratic", labels=[0, 1, 2, 3])
    if math.isnan(ref):
        assert ours.value is None
    else:
        assert ours.value == pytest.approx(ref, abs=1e-9)


@SETTINGS
@given(st.lists(st.integers(0, 3), min_size=2, max_size=30))
def test_identical_annotators_score_one(values):
    df = frame(values, values, values)
    if len(set(values)) < 2:
        assert cohen_kappa(df, "r0", "r1").value is None
        return
    assert cohen_kappa(df, "r0", "r1").value == pytest.approx(1.0)
    assert fleiss_kappa(df).value == pytest.approx(1.0)
    assert krippendorff_alpha(df).value == pytest.approx(1.0)
    assert krippendorff_alpha(df, level="ordinal").value == pytest.approx(1.0)
    assert percent_agreement(df).value == 1.0


@SETTINGS
@given(
    st.integers(2, 20).flatmap(
        lambda n: st.lists(st.lists(st.integers(0, 2), min_size=3, max_size=3), min_size=n, max_size=n)
    )
)
def test_fleiss_matches_statsmodels(rows):
    data = np.array(rows)
    table, _ = aggregate_raters(data)
    ours = fleiss_kappa(frame(*data.T.tolist()))
    with np.errstate(all="ignore"):
        ref = sm_fleiss(table)
    if ours.value is None:
        assert len(np.unique(data)) < 2 or math.isnan(ref)
    else:
        assert ours.value == pytest.approx(ref, abs=1e-9)
        assert ours.value <= 1


@SETTINGS
@given(
    st.integers(3, 20).flatmap(
        lambda n: st.lists(
            st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=n, max_size=n), min_size=2, max_size=4
        )
    )
)
def test_alpha_matches_krippendorff(raters):
    df = frame(*raters)
    data = np.array([[np.nan if v is None else v for v in r] for r in raters], float)
    pairable = (np.sum(~np.isnan(data), axis=0) >= 2).any()
    vals = data[~np.isnan(data)]
    for level in ("nominal", "ordinal"):
        ours = krippendorff_alpha(df, level=level, order=[1, 2, 3, 4, 5])
        if not pairable or len(np.unique(vals)) < 2:
            assert ours.value is None
            continue
        # krippendorff needs the value domain; map 1..5 to 0..4 as we do
        with np.errstate(invalid="ignore", divide="ignore"):  # the reference divides 0/0 into NaN
            ref = krippendorff.alpha(
                reliability_data=data - 1, level_of_measurement=level, value_domain=[0, 1, 2, 3, 4]
            )
        if math.isnan(ref):
            assert ours.value is None
        else:
            assert ours.value == pytest.approx(ref, abs=1e-9)
            assert ours.value <= 1


@SETTINGS
@given(st.lists(st.booleans(), min_size=1, max_size=64), st.lists(st.booleans(), min_size=1, max_size=64))
def test_iou_dice_bounded_symmetric(a, b):
    n = min(len(a), len(b))
    x, y = np.array(a[:n]), np.array(b[:n])
    for f in (iou, dice):
        v = f(x, y)
        assert 0 <= v <= 1 and v == f(y, x)
        assert f(x, x) == 1.0
    assert iou(x, y) <= dice(x, y) + 1e-12


@SETTINGS
@given(st.lists(st.floats(0, 10), min_size=4, max_size=4), st.lists(st.floats(0, 10), min_size=4, max_size=4))
def test_box_iou_bounded_symmetric(p, q):
    a = [min(p[0], p[2]), min(p[1], p[3]), max(p[0], p[2]) + 0.1, max(p[1], p[3]) + 0.1]
    b = [min(q[0], q[2]), min(q[1], q[3]), max(q[0], q[2]) + 0.1, max(q[1], q[3]) + 0.1]
    v = box_iou(a, b)
    assert 0 <= v <= 1 + 1e-12 and v == pytest.approx(box_iou(b, a))
    assert box_iou(a, a) == pytest.approx(1.0)


def test_bootstrap_ci_is_seeded_and_brackets_value():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 3, 80)
    b = np.where(rng.random(80) < 0.7, a, rng.integers(0, 3, 80))
    r1 = cohen_kappa(frame(a.tolist(), b.tolist()), "r0", "r1", n_boot=300, seed=7)
    r2 = cohen_kappa(frame(a.tolist(), b.tolist()), "r0", "r1", n_boot=300, seed=7)
    assert r1.ci == r2.ci and r1.ci[0] <= r1.value <= r1.ci[1]
