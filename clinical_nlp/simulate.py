"""Simulated expert annotators backed by a gold corpus, and the direct-mode
active-learning loop used by ``clinical-nlp al simulate`` and the benchmark.

The annotator is a pure function of (gold, pre-annotation, rng)::

    annotate(gold: AnnotatedNote, pre: tuple[Span, ...], rng, skill=...) -> tuple[Span, ...]

so it plugs both into the direct loop here and into the Doccano mode (acting
through the REST API as different users). ``AnnotatorSkill`` sets the error
rates; ``AnnotatorSkill()`` (all zero) reproduces the gold exactly.

Loop definition (direct mode, no Doccano):

* round 0 = the seed batch: ``batch`` notes drawn at random from the pool
  (seeded). There is no model yet, so the pre-annotation is empty and the
  oracle adds every span (edits = spans added). A model is trained on it and
  evaluated.
* round r >= 1: the strategy picks ``batch`` unlabeled notes using the current
  model; the model pre-annotates them; the oracle corrects the pre-annotation
  (edits counted pre vs corrected); the model is retrained from scratch on
  all labeled notes and evaluated.
* a point per round: ``round``, ``n_docs`` (cumulative labeled notes),
  ``edits`` (cumulative oracle edits), ``f1`` (strict micro span F1 on the
  evaluation notes over the chosen labels), plus precision, recall and timing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from clinical_nlp.edits import EDIT_KEYS, add_summaries, edit_summary
from clinical_nlp.errors import ConfigError, InputFormatError
from clinical_nlp.metrics import corpus_span_prf
from clinical_nlp.types import AnnotatedNote, Span

_WORD = re.compile(r"\S+")


# --------------------------------------------------------------------------- annotators
@dataclass(frozen=True, slots=True)
class AnnotatorSkill:
    """Per-annotator error rates (each a probability in [0, 1]).

    Attributes:
        boundary_error: a gold span gets one boundary moved by one word.
        miss_rate: a gold span that the pre-annotation does not already hold
            exactly is not added (a correct pre-annotated span is kept).
        negation_flip: the span's ``negation`` attribute is flipped
            (affirmed <-> negated; possible -> negated).
        wrong_label: the span gets another label from the label set.
        keep_wrong_pre: a wrong pre-annotated span (no gold match) is accepted.

    Example:
        >>> AnnotatorSkill(miss_rate=0.1).is_perfect
        False
    """

    boundary_error: float = 0.0
    miss_rate: float = 0.0
    negation_flip: float = 0.0
    wrong_label: float = 0.0
    keep_wrong_pre: float = 0.0

    def __post_init__(self) -> None:
        for name in ("boundary_error", "miss_rate", "negation_flip", "wrong_label", "keep_wrong_pre"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"annotator skill {name}={value!r} must be a probability in [0, 1]")

    @property
    def is_perfect(self) -> bool:
        return not any((self.boundary_error, self.miss_rate, self.negation_flip, self.wrong_label, self.keep_wrong_pre))

    @classmethod
    def from_level(cls, skill: float) -> AnnotatorSkill:
        """One knob: ``skill`` 1.0 = perfect; each error rate is ``(1 - skill) / 2``
        (missed spans and negation flips), ``(1 - skill) / 4`` for the others."""
        if not 0.0 <= skill <= 1.0:
            raise ConfigError(f"skill level {skill!r} must be within [0, 1]")
        e = 1.0 - skill
        return cls(boundary_error=e / 4, miss_rate=e / 2, negation_flip=e / 2, wrong_label=e / 4, keep_wrong_pre=e / 4)


PERFECT = AnnotatorSkill()


@lru_cache(maxsize=1)
def _schema_attributes() -> dict[str, frozenset[str]]:
    from clinical_nlp.config import load_label_schema

    return {spec.name: frozenset(spec.attributes) for spec in load_label_schema().labels}


def _may_carry(label: str, attribute: str) -> bool:
    """Whether the label schema lets ``label`` carry ``attribute`` (labels outside the schema: yes)."""
    allowed = _schema_attributes().get(label)
    return allowed is None or attribute in allowed


def _conform(span: Span) -> Span:
    """A simulated annotator follows the guideline: a relabelled span keeps only the attributes its label allows."""
    kept = {k: v for k, v in span.attributes.items() if _may_carry(span.label, k)}
    return span if len(kept) == len(span.attributes) else replace(span, attributes=kept)


def _shift_boundary(text: str, span: Span, rng: np.random.Generator) -> Span:
    """Move one boundary of a contiguous span by one word (extend or shrink)."""
    if span.fragments is not None:
        return span
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    options: list[tuple[int, int]] = []
    inside = [w for w in words if w[0] >= span.start and w[1] <= span.end]
    before = [w for w in words if w[1] <= span.start]
    after = [w for w in words if w[0] >= span.end]
    if before:
        options.append((before[-1][0], span.end))
    if after:
        options.append((span.start, after[0][1]))
    if len(inside) > 1:
        options.append((inside[1][0], span.end))
        options.append((span.start, inside[-2][1]))
    options = [o for o in options if o != (span.start, span.end) and o[1] > o[0]]
    if not options:
        return span
    start, end = options[int(rng.integers(len(options)))]
    return replace(span, start=start, end=end, text=text[start:end], fragments=None)


def annotate(
    gold: AnnotatedNote,
    pre: Sequence[Span],
    rng: np.random.Generator,
    skill: AnnotatorSkill = PERFECT,
    labels: Sequence[str] | None = None,
    annotator: str | None = None,
) -> tuple[Span, ...]:
    """What a simulated expert submits for ``gold.note`` after correcting ``pre``.

    Deterministic for a given ``rng`` state. With :data:`PERFECT` skill the
    result equals ``gold.spans`` (sorted). ``labels`` is the label set used for
    wrong-label errors (default: labels in gold and pre). Spans carry
    ``source=annotator`` when given.
    """
    text = gold.note.text
    pre_keys = {(s.pieces, s.label) for s in pre}
    label_set = sorted(set(labels) if labels is not None else {s.label for s in (*gold.spans, *pre)})
    out: list[Span] = []
    gold_sorted = sorted(gold.spans, key=lambda s: (s.start, s.end, s.label))
    for span in gold_sorted:
        # draw every knob for every span so that the rng stream does not depend on outcomes
        r_miss, r_bound, r_label, r_neg = rng.random(4)
        if r_miss < skill.miss_rate and (span.pieces, span.label) not in pre_keys:
            continue
        s = span
        if r_bound < skill.boundary_error:
            s = _shift_boundary(text, s, rng)
        if r_label < skill.wrong_label:
            others = [x for x in label_set if x != s.label]
            if others:
                s = replace(s, label=others[int(rng.integers(len(others)))])
        if r_neg < skill.negation_flip and _may_carry(s.label, "negation"):
            s = s.with_attributes(negation="affirmed" if s.negation != "affirmed" else "negated")
        out.append(_conform(s))
    gold_keys = {(s.pieces, s.label) for s in gold.spans}
    for p in sorted(pre, key=lambda s: (s.start, s.end, s.label)):
        if (p.pieces, p.label) in gold_keys:
            continue
        if rng.random() < skill.keep_wrong_pre:
            out.append(replace(p, score=None))
    if annotator is not None:
        out = [replace(s, source=annotator) for s in out]
    return tuple(sorted(out, key=lambda s: (s.start, s.end, s.label)))


@dataclass(frozen=True)
class SimulatedAnnotator:
    """A named oracle with a skill profile and its own seeded random stream.

    Example:
        >>> from clinical_nlp.types import Note
        >>> gold = AnnotatedNote(Note("n", "No fever."), (Span(3, 8, "Condition", "fever"),))
        >>> SimulatedAnnotator("expert1").annotate(gold, ())[0].label
        'Condition'
    """

    name: str
    skill: AnnotatorSkill = PERFECT
    seed: int = 0

    def rng_for(self, item_id: str) -> np.random.Generator:
        """A stream that depends only on (seed, annotator, item): order-independent."""
        key = [self.seed, *(ord(c) for c in self.name), 0, *(ord(c) for c in item_id)]
        return np.random.default_rng(np.random.SeedSequence(key))

    def annotate(
        self,
        gold: AnnotatedNote,
        pre: Sequence[Span],
        rng: np.random.Generator | None = None,
        labels: Sequence[str] | None = None,
    ) -> tuple[Span, ...]:
        return annotate(
            gold, pre, rng if rng is not None else self.rng_for(gold.id), self.skill, labels=labels, annotator=self.name
        )


# --------------------------------------------------------------------------- edits
def count_edits(pre: Sequence[Span], final: Sequence[Span]) -> int:
    """Total edits an expert makes to turn ``pre`` into ``final``
    (``clinical_nlp.edits.edit_summary(...)["total"]``)."""
    return int(edit_summary(tuple(pre), tuple(final))["total"])


# --------------------------------------------------------------------------- loop
#: ``train_fn(docs, seed) -> model`` with ``predict(notes)`` and ``token_probabilities(notes, mc_dropout=0)``.
TrainFn = Callable[[Sequence[AnnotatedNote], int], Any]


def restrict_labels(docs: Iterable[AnnotatedNote], labels: Iterable[str]) -> list[AnnotatedNote]:
    """Copies of ``docs`` holding only spans with a label in ``labels``."""
    keep = set(labels)
    return [replace(d, spans=tuple(s for s in d.spans if s.label in keep), relations=()) for d in docs]


def without_texts_of(docs: Sequence[AnnotatedNote], held: Sequence[AnnotatedNote]) -> list[AnnotatedNote]:
    """``docs`` less every note whose text (stripped) is also a note of ``held``: a model trained or
    stopped early on an evaluation note would be scored on what it saw."""
    seen = {d.text.strip() for d in held}
    return [d for d in docs if d.text.strip() not in seen]


def default_train_fn(
    labels: Sequence[str],
    epochs: int = 10,
    *,
    dev: Sequence[AnnotatedNote] | None = None,
    warm_start: bool = False,
    first_epochs: int | None = None,
    patience: int = 3,
    **config: Any,
) -> TrainFn:
    """A trainer for the fast spaCy entity model (``clinical_nlp.models.entities``).

    Without ``dev`` each call trains ``epochs`` passes from scratch. With ``dev`` (a
    fixed set kept out of the pool) training stops early after ``patience`` epochs
    without a dev improvement and keeps the best epoch. With ``warm_start`` every
    call after the first continues from the previous call's model (saved in a
    temporary directory), so a round costs a few passes instead of a full training;
    the first call may train longer (``first_epochs``, default ``3 * epochs``).
    Extra ``config`` keys go to ``TrainConfig``. The returned trainer's ``member``
    attribute trains the same way without becoming the next warm-start base (for
    committee members trained on bootstrap samples).
    """
    import shutil
    import tempfile
    import weakref
    from pathlib import Path

    from clinical_nlp.models.entities import TrainConfig, train_entity_model

    dev_docs = restrict_labels(dev, labels) if dev else None
    state: dict[str, Any] = {"calls": 0}

    def fit(docs: Sequence[AnnotatedNote], seed: int) -> Any:
        base = state.get("path") if warm_start else None
        n_epochs = epochs if base is not None or not warm_start else (first_epochs or 3 * epochs)
        cfg = TrainConfig(
            **{
                "kind": "spacy",
                "labels": tuple(labels),
                "epochs": n_epochs,
                "seed": int(seed),
                "patience": patience if dev_docs else 0,
                "base_model": base,
                **config,
            }
        )
        return train_entity_model(list(docs), dev_docs, cfg, progress=False)

    def train(docs: Sequence[AnnotatedNote], seed: int) -> Any:
        model = fit(docs, seed)
        state["calls"] += 1
        if warm_start:
            if "tmp" not in state:
                # removed when the trainer is collected (or at exit), without TemporaryDirectory's ResourceWarning
                state["tmp"] = tempfile.mkdtemp(prefix="clinical-nlp-al-")
                weakref.finalize(train, shutil.rmtree, state["tmp"], ignore_errors=True)
            path = Path(state["tmp"]) / f"round{state['calls']}"
            model.save(path)
            state["path"] = path
        return model

    # committee members (bootstrap samples) start from the same base but never become the base
    train.member = fit  # type: ignore[attr-defined]
    return train


def evaluate_model(model: Any, eval_docs: Sequence[AnnotatedNote], labels: Sequence[str]) -> dict[str, float]:
    """Strict (exact) micro span P/R/F1 of ``model`` on ``eval_docs`` over ``labels``."""
    preds = model.predict([d.note for d in eval_docs])
    prf = corpus_span_prf([d.spans for d in eval_docs], preds, mode="exact", labels=labels)["__micro__"]
    return {"precision": prf.precision, "recall": prf.recall, "f1": prf.f1}


def correct_batch(
    golds: Sequence[AnnotatedNote],
    pres: Sequence[Sequence[Span]],
    rng: np.random.Generator,
    skill: AnnotatorSkill = PERFECT,
    labels: Sequence[str] | None = None,
) -> tuple[list[AnnotatedNote], dict[str, int]]:
    """The simulated expert corrects each pre-annotation in turn: the corrected notes and the
    summed edit summary (``summary["total"]`` = the batch's edits)."""
    corrected: list[AnnotatedNote] = []
    summaries = []
    for gold, pre in zip(golds, pres, strict=True):
        final = annotate(gold, tuple(pre), rng, skill, labels=labels)
        summaries.append(edit_summary(tuple(pre), final))
        corrected.append(replace(gold, spans=final))
    return corrected, add_summaries(summaries)


def simulate_active_learning(
    pool: Sequence[AnnotatedNote],
    eval_docs: Sequence[AnnotatedNote],
    strategy: str,
    *,
    rounds: int,
    batch: int,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    train_fn: TrainFn | None = None,
    skill: AnnotatorSkill = PERFECT,
    strategy_config: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the direct-mode loop (see the module docstring) and return the curve
    ``{"strategy", "seed", "batch", "labels", "pool_size", "points": [...]}``.

    Raises:
        InputFormatError: empty pool/eval, or no span of ``labels`` in the pool.
        ConfigError: bad rounds/batch or an unknown strategy.
    """
    from clinical_nlp.active import CommitteeDisagreement, get_strategy

    if rounds < 0:
        raise ConfigError(f"rounds must be >= 0, got {rounds}")
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    if not pool:
        raise InputFormatError("the pool has no documents")
    if not eval_docs:
        raise InputFormatError("the evaluation set has no documents")
    pool_labels = sorted({s.label for d in pool for s in d.spans})
    labels = sorted(set(labels)) if labels else pool_labels
    if not set(labels) & set(pool_labels):
        raise InputFormatError(f"no span in the pool has any of the labels {labels}")
    in_eval = len(pool) - len(pool := without_texts_of(pool, eval_docs))
    if not pool:
        raise InputFormatError(
            "every pool note's text is also in the evaluation set: score on notes the loop never sees"
        )
    pool = restrict_labels(pool, labels)
    eval_docs = restrict_labels(eval_docs, labels)
    if train_fn is None:
        train_fn = default_train_fn(labels)
    config = dict(strategy_config or {})
    # a committee member must not replace the loop's warm-start model: use the trainer's
    # side-effect-free ``member`` when it has one
    member_fn = getattr(train_fn, "member", train_fn)
    if strategy.split(".v")[0] == "committee" and "train_fn" not in config:
        config["train_fn"] = member_fn
    strat = get_strategy(strategy, **config)
    if isinstance(strat, CommitteeDisagreement) and strat.train_fn is None:
        strat.train_fn = member_fn

    rng = np.random.default_rng(seed)
    oracle_rng = np.random.default_rng([seed, 1])
    labeled: list[int] = []
    labeled_docs: dict[int, AnnotatedNote] = {}
    edits = 0
    breakdown = dict.fromkeys((*EDIT_KEYS, "total"), 0)
    points: list[dict[str, Any]] = []
    model: Any = None

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=rounds + 1, desc=f"al {strat.name}", unit="round")
    for rnd in range(rounds + 1):
        unlabeled = np.array(sorted(set(range(len(pool))) - set(labeled)), dtype=np.int64)
        if unlabeled.size == 0:
            break
        t0 = time.perf_counter()
        if rnd == 0:
            chosen = rng.choice(unlabeled, size=min(batch, unlabeled.size), replace=False)
            pres: list[tuple[Span, ...]] = [() for _ in chosen]
        else:
            # what a strategy may see: the annotators' spans of labeled notes, bare text otherwise
            # (never the gold of an unlabeled note, nor gold in place of a noisy annotation)
            visible = [labeled_docs[i] if i in labeled_docs else pool[i].note for i in range(len(pool))]
            chosen = strat.query(model, visible, unlabeled, np.array(labeled, dtype=np.int64), batch, rng)
            pres = [tuple(p) for p in model.predict([pool[i].note for i in chosen])]
        t_query = time.perf_counter() - t0
        corrected, summary = correct_batch([pool[int(i)] for i in chosen], pres, oracle_rng, skill, labels)
        breakdown = add_summaries([breakdown, summary])
        round_edits = int(summary["total"])
        for i, doc in zip(chosen, corrected, strict=True):
            labeled.append(int(i))
            labeled_docs[int(i)] = doc
        edits += round_edits
        t1 = time.perf_counter()
        model = train_fn([labeled_docs[i] for i in labeled], int(rng.integers(2**31)))
        t_train = time.perf_counter() - t1
        t2 = time.perf_counter()
        scores = evaluate_model(model, eval_docs, labels)
        t_eval = time.perf_counter() - t2
        points.append(
            {
                "round": rnd,
                "n_docs": len(labeled),
                "edits": edits,
                "f1": scores["f1"],
                "round_edits": round_edits,
                "edit_breakdown": dict(breakdown),
                "precision": scores["precision"],
                "recall": scores["recall"],
                "query_seconds": round(t_query, 3),
                "train_seconds": round(t_train, 3),
                "eval_seconds": round(t_eval, 3),
            }
        )
        if bar is not None:
            bar.set_postfix(n_docs=len(labeled), f1=f"{scores['f1']:.3f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    return {
        "strategy": strat.name,
        "seed": seed,
        "batch": batch,
        "rounds": rounds,
        "labels": list(labels),
        "pool_size": len(pool),
        "pool_notes_dropped_as_in_eval": in_eval,
        "eval_size": len(eval_docs),
        "skill": {k: getattr(skill, k) for k in AnnotatorSkill.__slots__},
        "points": points,
    }


def full_pool_f1(
    pool: Sequence[AnnotatedNote],
    eval_docs: Sequence[AnnotatedNote],
    labels: Sequence[str] | None = None,
    train_fn: TrainFn | None = None,
    seed: int = 0,
) -> float:
    """F1 of a model trained on the whole pool (the ceiling of a learning curve)."""
    labels = sorted(set(labels)) if labels else sorted({s.label for d in pool for s in d.spans})
    train_fn = train_fn or default_train_fn(labels)
    model = train_fn(restrict_labels(pool, labels), seed)
    return evaluate_model(model, restrict_labels(eval_docs, labels), labels)["f1"]
