"""Query strategies: valid indices, determinism, and what each criterion prefers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp import active
from clinical_nlp.errors import ConfigError
from clinical_nlp.types import AnnotatedNote, Note, Span

try:  # fakes live beside the tests (works with or without a tests/unit package)
    from .test_active_fakes import FixedProbModel, MemorizerModel, memorizer_train_fn
except ImportError:
    from test_active_fakes import FixedProbModel, MemorizerModel, memorizer_train_fn


def _pool(n: int, seed: int = 0) -> tuple[list[AnnotatedNote], FixedProbModel]:
    rng = np.random.default_rng(seed)
    docs, probs = [], {}
    for i in range(n):
        n_tok = int(rng.integers(0, 6))
        p = rng.dirichlet(np.ones(3), size=n_tok)
        words = " ".join(f"w{i}_{t}" for t in range(n_tok))
        docs.append(AnnotatedNote(Note(f"d{i}", words or " "), ()))
        probs[f"d{i}"] = p.reshape(n_tok, 3)
    return docs, FixedProbModel(probs)


def _toy_embed(texts: list[str]) -> np.ndarray:
    return np.array([[float(len(t)), float(sum(map(ord, t)) % 7)] for t in texts])


def _make(name: str) -> active.QueryStrategy:
    if name.startswith("committee"):
        return active.get_strategy(name, train_fn=memorizer_train_fn(["A"]), members=3)
    if name.startswith(("kcenter", "hybrid")):
        return active.get_strategy(name, embed=_toy_embed)
    if name.startswith("mc_dropout"):
        return active.get_strategy(name, passes=3)
    return active.get_strategy(name)


ALL = active.list_strategies()


def test_registry_versions_and_plain_names():
    assert {
        "random.v1",
        "least_confidence.v1",
        "margin.v1",
        "entropy.v1",
        "committee.v1",
        "mc_dropout.v1",
        "kcenter.v1",
        "hybrid.v1",
        "cost_aware.v1",
    } <= set(ALL)
    assert active.resolve_name("entropy") == "entropy.v1"
    assert active.get_strategy("random").name == "random.v1"
    with pytest.raises(ConfigError, match="unknown query strategy 'nope'"):
        active.get_strategy("nope")
    with pytest.raises(ConfigError, match="bad config"):
        active.get_strategy("entropy", bogus=1)
    with pytest.raises(ConfigError, match="aggregation"):
        active.get_strategy("entropy", aggregate="median")


@pytest.mark.parametrize("name", ALL)
def test_valid_unique_indices_and_deterministic(name):
    docs, model = _pool(30)
    labeled = np.arange(0, 30, 3)
    unlabeled = np.setdiff1d(np.arange(30), labeled)
    picks = [_make(name).query(model, docs, unlabeled, labeled, 7, np.random.default_rng(5)) for _ in range(2)]
    a, b = picks
    assert a.dtype.kind == "i" and len(a) == 7 and len(set(a.tolist())) == 7
    assert set(a.tolist()) <= set(unlabeled.tolist())
    assert np.array_equal(a, b)
    # asking for more than available returns all unlabeled, once each
    allp = _make(name).query(model, docs, unlabeled[:4], labeled, 10, np.random.default_rng(0))
    assert sorted(allp.tolist()) == sorted(unlabeled[:4].tolist())
    assert len(_make(name).query(model, docs, unlabeled, labeled, 0, np.random.default_rng(0))) == 0


def test_bad_indices_rejected():
    docs, model = _pool(5)
    with pytest.raises(ValueError, match="outside the pool"):
        active.get_strategy("random").query(None, docs, [1, 9], [], 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="duplicate"):
        active.get_strategy("entropy").query(model, docs, [1, 1], [], 1, np.random.default_rng(0))


def test_uncertainty_prefers_uncertain_note():
    sure = np.array([[0.98, 0.01, 0.01]] * 3)
    unsure = np.array([[0.34, 0.33, 0.33]] * 3)
    mid = np.array([[0.6, 0.3, 0.1]] * 3)
    docs = [AnnotatedNote(Note(x, "a b c")) for x in ("sure", "unsure", "mid")]
    model = FixedProbModel({"sure": sure, "unsure": unsure, "mid": mid})
    for name in ("least_confidence", "margin", "entropy"):
        got = active.get_strategy(name).query(model, docs, [0, 1, 2], [], 2, np.random.default_rng(0))
        assert got.tolist() == [1, 2], name


def test_aggregation_mean_max_sum_differ():
    # long note of mild uncertainty vs short note with one very uncertain token
    long = np.tile([[0.7, 0.2, 0.1]], (20, 1))
    short = np.array([[0.34, 0.33, 0.33], [0.99, 0.005, 0.005]])
    docs = [AnnotatedNote(Note("long", "x")), AnnotatedNote(Note("short", "y"))]
    model = FixedProbModel({"long": long, "short": short})
    pick = {
        agg: active.get_strategy("entropy", aggregate=agg).query(model, docs, [0, 1], [], 1, np.random.default_rng(0))[
            0
        ]
        for agg in ("mean", "max", "sum")
    }
    assert pick["max"] == 1 and pick["sum"] == 0
    assert active.aggregate_scores(np.array([1.0, 3.0]), "mean") == 2.0
    assert active.aggregate_scores(np.zeros(0), "max") == 0.0


def test_kcenter_picks_far_points():
    # two tight clusters near 0 and one far point; labeled centre at the origin cluster
    pts = {"a": [0, 0], "b": [0.1, 0], "c": [0, 0.1], "far": [10, 10], "mid": [5, 5], "lab": [0, 0.05]}
    embed = lambda texts: np.array([pts[t] for t in texts], dtype=float)  # noqa: E731
    docs = [AnnotatedNote(Note(k, k)) for k in pts]
    s = active.get_strategy("kcenter", embed=embed)
    got = s.query(None, docs, [0, 1, 2, 3, 4], [5], 2, np.random.default_rng(0))
    assert [docs[i].id for i in got] == ["far", "mid"]


def test_k_center_greedy_no_centres_covers_extremes():
    emb = np.array([[0.0], [1.0], [2.0], [100.0]])
    pos = active.k_center_greedy(emb, np.arange(4), np.zeros(0, dtype=int), 2, np.random.default_rng(1))
    assert 3 in pos.tolist()


def test_cost_aware_prefers_cheap_items_at_equal_benefit():
    docs = [AnnotatedNote(Note("dear", "x")), AnnotatedNote(Note("cheap", "y"))]
    # length cost: both have two maximally uncertain tokens (equal benefit); "dear" has 8 more
    # confident tokens (entropy 0), so it costs more to read
    unsure, sure = [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]
    model = FixedProbModel({"dear": np.array([unsure] * 2 + [sure] * 8), "cheap": np.array([unsure] * 2)})
    s = active.get_strategy("cost_aware", cost="length")
    benefit, cost = s.benefit_and_cost(model, [d.note for d in docs])
    assert benefit[0] == pytest.approx(benefit[1]) and cost[0] > cost[1]
    assert docs[int(s.query(model, docs, [0, 1], [], 1, np.random.default_rng(0))[0])].id == "cheap"
    # edits cost: a 3-tag token with the same entropy as [0.5, 0.5, 0] but a more confident top
    # tag has fewer expected edits -> preferred
    target = np.log(2)
    lo, hi = 0.01, 0.3
    for _ in range(60):
        t = (lo + hi) / 2
        h = float(active.token_entropy(np.array([[1 - 2 * t, t, t]]))[0])
        lo, hi = (t, hi) if h < target else (lo, t)
    model2 = FixedProbModel({"dear": np.array([unsure]), "cheap": np.array([[1 - 2 * lo, lo, lo]])})
    s2 = active.get_strategy("cost_aware", cost="edits")
    b2, c2 = s2.benefit_and_cost(model2, [d.note for d in docs])
    assert b2[0] == pytest.approx(b2[1], rel=1e-6) and c2[0] > c2[1]
    assert docs[int(s2.query(model2, docs, [0, 1], [], 1, np.random.default_rng(0))[0])].id == "cheap"
    with pytest.raises(ConfigError):
        active.get_strategy("cost_aware", cost="minutes")


def test_mc_dropout_uses_passes_and_bald():
    class PassModel(FixedProbModel):
        """Each call is one stochastic pass: "agree" is uncertain but stable, "disagree" flips."""

        def token_probabilities(self, notes, mc_dropout=0):
            self.calls.append(mc_dropout)
            flip = len(self.calls) % 2
            table = {
                "agree": np.array([[0.5, 0.5]]),
                "disagree": np.array([[1.0, 0.0]]) if flip else np.array([[0.0, 1.0]]),
            }
            return [table[n.id] for n in notes]

    docs = [AnnotatedNote(Note("agree", "x")), AnnotatedNote(Note("disagree", "y"))]
    model = PassModel({})
    got = active.get_strategy("mc_dropout", passes=4).query(model, docs, [0, 1], [], 1, np.random.default_rng(0))
    assert got.tolist() == [1] and model.calls == [1, 1, 1, 1]


def test_committee_vote_entropy_and_kl():
    labels = ["A", "B"]
    docs = [
        AnnotatedNote(Note("t0", "fever cough"), (Span(0, 5, "A", "fever"), Span(6, 11, "B", "cough"))),
        AnnotatedNote(Note("t1", "fever"), (Span(0, 5, "A", "fever"),)),
        AnnotatedNote(Note("u0", "fever fever")),
        AnnotatedNote(Note("u1", "cough zzz")),
    ]
    for measure in ("vote", "kl"):
        s = active.get_strategy("committee", train_fn=memorizer_train_fn(labels), members=5, measure=measure)
        got = s.query(None, docs, [2, 3], [0, 1], 1, np.random.default_rng(3))
        # members trained on bootstraps sometimes miss "cough" -> they disagree on u1
        assert got.tolist() == [3], measure
    with pytest.raises(ConfigError, match="train_fn"):
        active.get_strategy("committee").query(None, docs, [2], [0], 1, np.random.default_rng(0))


def test_hybrid_thins_uncertain_shortlist():
    docs, model = _pool(20, seed=2)
    s = active.get_strategy("hybrid", embed=_toy_embed, oversample=2)
    got = s.query(model, docs, np.arange(20), [], 5, np.random.default_rng(0))
    shortlist = active.get_strategy("entropy").query(model, docs, np.arange(20), [], 10, np.random.default_rng(0))
    assert set(got.tolist()) <= set(shortlist.tolist())


def test_memorizer_fake_matches_protocol():
    m = MemorizerModel([AnnotatedNote(Note("a", "fever"), (Span(0, 5, "A", "fever"),))], ["A"])
    assert isinstance(m, active.TokenProbabilityModel)
    assert m.predict([Note("b", "no fever")])[0][0].start == 3


@settings(max_examples=40, deadline=None)
@given(
    n_pool=st.integers(1, 25),
    n=st.integers(0, 30),
    seed=st.integers(0, 1000),
    name=st.sampled_from(["random", "least_confidence", "margin", "entropy", "cost_aware", "kcenter", "hybrid"]),
)
def test_property_query_returns_subset_of_unlabeled(n_pool, n, seed, name):
    docs, model = _pool(n_pool, seed)
    rng = np.random.default_rng(seed)
    mask = rng.random(n_pool) < 0.5
    unlabeled = np.flatnonzero(~mask)
    labeled = np.flatnonzero(mask)
    got = _make(name).query(model, docs, unlabeled, labeled, n, np.random.default_rng(seed))
    assert len(got) == min(n, len(unlabeled))
    assert len(set(got.tolist())) == len(got)
    assert set(got.tolist()) <= set(unlabeled.tolist())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=1, max_size=8))
def test_property_token_scores_bounded(rows):
    p = np.array(rows)
    for fn in (active.token_least_confidence, active.token_margin, active.token_entropy):
        s = fn(p)
        assert s.shape == (len(rows),)
        assert np.all(s >= -1e-9)
    assert np.all(active.token_entropy(p) <= np.log(3) + 1e-9)
    assert np.all(active.token_margin(p) <= 1 + 1e-9)


def test_budgeted_top_n_fits_the_limit_and_beats_the_cheapest():
    rng = np.random.default_rng(3)
    benefit = rng.gamma(2.0, 1.0, size=200)
    cost = benefit * rng.uniform(0.5, 1.5, size=200) + 0.1  # benefit and cost correlated, as in practice
    n, limit = 20, 0.8 * 20 * cost.mean()
    pos = active.budgeted_top_n(benefit, cost, n, limit)
    assert len(set(pos.tolist())) == n
    assert cost[pos].sum() <= limit
    cheapest = np.argsort(cost)[:n]
    assert benefit[pos].sum() > benefit[cheapest].sum()
    # the batch is no worse than any random batch that fits the same limit
    for _ in range(200):
        r = rng.choice(200, n, replace=False)
        if cost[r].sum() <= limit:
            assert benefit[pos].sum() >= benefit[r].sum()
    # a loose limit gives the plain top-n by benefit; an impossible one the n cheapest
    assert sorted(active.budgeted_top_n(benefit, cost, n, 1e9).tolist()) == sorted(np.argsort(-benefit)[:n].tolist())
    assert sorted(active.budgeted_top_n(benefit, cost, n, 0.0).tolist()) == sorted(cheapest.tolist())
    assert len(active.budgeted_top_n(benefit, cost, 0, limit)) == 0


def test_cost_aware_budget_spends_at_most_a_random_batch():
    docs, model = _pool(60, seed=4)
    s = active.get_strategy("cost_aware", budget=0.7)
    benefit, cost = s.benefit_and_cost(model, [d.note for d in docs])
    picks = s.query(model, docs, np.arange(60), [], 10, np.random.default_rng(0))
    assert len(set(picks.tolist())) == 10
    assert cost[picks].sum() <= 0.7 * 10 * cost.mean() + 1e-9
    plain = active.get_strategy("cost_aware").query(model, docs, np.arange(60), [], 10, np.random.default_rng(0))
    assert not np.array_equal(np.sort(picks), np.sort(plain))  # the budget changes the criterion
    for bad in (0, -1, "half"):
        with pytest.raises(ConfigError, match="budget"):
            active.get_strategy("cost_aware", budget=bad)


def test_committee_budget_keeps_the_loop_models_expected_edits_within_the_limit():
    docs, model = _pool(40, seed=6)
    labeled = np.arange(0, 40, 4)
    unlabeled = np.setdiff1d(np.arange(40), labeled)
    s = active.get_strategy("committee", train_fn=memorizer_train_fn(["A"]), members=3, budget=0.6)
    picks = s.query(model, docs, unlabeled, labeled, 8, np.random.default_rng(2))
    assert len(set(picks.tolist())) == 8 and set(picks.tolist()) <= set(unlabeled.tolist())
    cost = {
        int(i): float(active.token_least_confidence(p).sum()) + 1.0
        for i, p in zip(unlabeled, model.token_probabilities([docs[i].note for i in unlabeled]), strict=True)
    }
    assert sum(cost[int(i)] for i in picks) <= 0.6 * 8 * np.mean(list(cost.values())) + 1e-9
    with pytest.raises(ConfigError, match="budget"):
        active.get_strategy("committee", budget=-1)
