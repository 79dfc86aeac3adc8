"""Assertion classification (negation, temporality, experiencer) of a marked concept.

Design: a cascade of ConText-style cue rules (``guidelines/context_rules.json``,
compiled to regular expressions, no spaCy needed) and a linear model whose
features are the rule decisions plus n-grams of the concept's context window.
The linear model is a small JSON file shipped in ``clinical_nlp/resources/assertion``
and created by ``scripts/train_assertion_model.py`` (``make model``).

``rules_only=True`` uses the cue rules alone (faster, less accurate).

Example:
    >>> classify_assertions([("No fever today.", 3, 8)], rules_only=True)[0]["negation"]
    'negated'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from clinical_nlp.errors import ConfigError, InputFormatError, OffsetMismatchError
from clinical_nlp.io._common import MAX_TEXT_CHARS  # one limit for every reader and the pipeline
from clinical_nlp.models.assertion_linear import (  # noqa: F401  (re-exported: the model's home is models/)
    DEFAULT_MODEL_DIR,
    MODEL_FILE,
    LinearAssertionModel,
    default_model_available,
    load_model,
)
from clinical_nlp.pipeline.cue_rules import CueRule, load_cue_rules  # noqa: F401  (re-exported)
from clinical_nlp.textnorm import plain_text

ATTRIBUTES = ("negation", "temporality", "experiencer")
#: ``rules`` (cue rules), ``linear`` (rules + linear model), ``accurate`` (+ MiniLM where unsure).
MODES = ("rules", "linear", "accurate")
#: The most accurate mode that meets the speed target (RESULTS.md); ``linear`` where the MiniLM
#: model cannot run (no packaged MiniLM, or neither ONNX Runtime nor torch installed).
DEFAULT_MODE = "accurate"
#: Characters of context kept on each side of the concept.
WINDOW_CHARS = 240
LEFT_TOKENS = 10
RIGHT_TOKENS = 8

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_SENT_BREAK = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9])|\n\s*\n|\n(?=[A-Z][A-Za-z /]{2,40}:)")

_CATEGORY_TO_FEATURE = {
    "NEGATED_EXISTENCE": "NEG",
    "POSSIBLE_EXISTENCE": "POSS",
    "HISTORICAL": "HIST",
    "HYPOTHETICAL": "HYPO",
    "FAMILY": "FAM",
}


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The concept's sentence, searched in the whole text so a break right before the concept
    ("No fever. Metformin") or right after it ("... fever. Next") is seen."""
    lo = max(0, start - WINDOW_CHARS)
    hi = min(len(text), end + WINDOW_CHARS)
    s = lo
    for m in _SENT_BREAK.finditer(text, lo, end):
        if m.end() <= start:
            s = m.end()
    brk = _SENT_BREAK.search(text, end, hi)
    e = brk.start() if brk else hi
    return s, e


#: prefilter caches ``key -> (rules, text, rules whose first words occur in the text)``: notes keyed by
#: identity (their concepts share one entry, no lower-casing per concept), sentences by content
_NOTE_RULES: dict[tuple[int, object], tuple[Sequence[CueRule], str, tuple[CueRule, ...]]] = {}
_SENTENCE_RULES: dict[tuple[int, object], tuple[Sequence[CueRule], str, tuple[CueRule, ...]]] = {}


def _rules_in(rules: Sequence[CueRule], text: str, cache: dict, by_identity: bool, size: int) -> Sequence[CueRule]:
    """The rules that can match somewhere in ``text``: a rule whose first words are not in a text is
    not in any part of it (:func:`_cues` still checks each candidate on the concept's own context)."""
    key = (id(rules), id(text) if by_identity else text)
    hit = cache.get(key)
    if hit is not None and hit[0] is rules and hit[1] == text:
        return hit[2]
    if len(cache) >= size:
        cache.clear()
    present = _present(rules, text.lower())
    found = tuple(r for r in rules if not r.first or not present.isdisjoint(r.first))
    cache[key] = (rules, text, found)
    return found


#: rule set (by identity) -> (the rules, the distinct first words of all of them)
_FIRST_WORDS: dict[int, tuple[Sequence[CueRule], tuple[str, ...]]] = {}


def _present(rules: Sequence[CueRule], lower: str) -> set[str]:
    """The rules' first words that occur in ``lower``, each distinct word tested once (many rules
    share one: "no", "history"), the same substring test as testing rule by rule."""
    hit = _FIRST_WORDS.get(id(rules))
    if hit is None or hit[0] is not rules:
        if len(_FIRST_WORDS) >= 512:
            _FIRST_WORDS.clear()
        hit = (rules, tuple({f for r in rules for f in r.first}))
        _FIRST_WORDS[id(rules)] = hit
    return {f for f in hit[1] if f in lower}


def _cues(
    rules: Sequence[CueRule], left: str, right: str
) -> tuple[list[tuple[CueRule, int]], list[tuple[CueRule, int]]]:
    """Cues in scope: forward cues left of the concept, backward cues right of it.

    Returns ``(left_hits, right_hits)`` with token distances to the concept; a
    terminating cue between a cue and the concept closes its scope.
    """
    lhits: list[tuple[CueRule, int, int]] = []
    rhits: list[tuple[CueRule, int, int]] = []
    in_left, in_right = _present(rules, left), _present(rules, right)
    for rule in rules:
        if rule.direction in ("FORWARD", "BIDIRECTIONAL", "TERMINATE", "PSEUDO") and (
            not rule.first or not in_left.isdisjoint(rule.first)
        ):
            for m in rule.regex.finditer(left):
                lhits.append((rule, m.start(), m.end()))
        if rule.direction in ("BACKWARD", "BIDIRECTIONAL", "TERMINATE", "PSEUDO") and (
            not rule.first or not in_right.isdisjoint(rule.first)
        ):
            for m in rule.regex.finditer(right):
                rhits.append((rule, m.start(), m.end()))
    # drop cues contained in a longer cue (ConText's longest-match pruning)
    lhits = _prune(lhits)
    rhits = _prune(rhits)
    term_left = max((e for r, s, e in lhits if r.direction == "TERMINATE"), default=-1)
    pseudo_l = [(s, e) for r, s, e in lhits if r.direction == "PSEUDO"]
    out_l = []
    for r, s, e in lhits:
        if r.direction not in ("FORWARD", "BIDIRECTIONAL") or s < term_left:
            continue
        if any(ps <= s and e <= pe for ps, pe in pseudo_l):
            continue
        out_l.append((r, len(_TOKEN.findall(left[e:]))))
    term_right = min((s for r, s, e in rhits if r.direction == "TERMINATE"), default=len(right) + 1)
    out_r = []
    for r, s, e in rhits:
        if r.direction not in ("BACKWARD", "BIDIRECTIONAL") or e > term_right:
            continue
        out_r.append((r, len(_TOKEN.findall(right[:s]))))
    return out_l, out_r


def _prune(hits: list[tuple[CueRule, int, int]]) -> list[tuple[CueRule, int, int]]:
    hits.sort(key=lambda h: (h[1], -(h[2] - h[1])))
    kept: list[tuple[CueRule, int, int]] = []
    for h in hits:
        if any(k[1] <= h[1] and h[2] <= k[2] and (k[2] - k[1]) > (h[2] - h[1]) for k in kept):
            continue
        kept.append(h)
    return kept


#: attribute -> (value without a cue, {cue category: value} in order of precedence)
_RULE_VALUES: dict[str, tuple[str, dict[str, str]]] = {
    "negation": ("affirmed", {"NEGATED_EXISTENCE": "negated", "POSSIBLE_EXISTENCE": "possible"}),
    "temporality": ("recent", {"HYPOTHETICAL": "hypothetical", "HISTORICAL": "historical"}),
    "experiencer": ("patient", {"FAMILY": "family"}),
}


def _rule_decision(
    lc: list[tuple[CueRule, int]], rc: list[tuple[CueRule, int]], max_scope: int = 30
) -> dict[str, tuple[str, list[str]]]:
    cats: dict[str, list[str]] = {}
    for r, dist in lc + rc:
        if dist <= max_scope:
            cats.setdefault(r.category, []).append(r.id)
    out: dict[str, tuple[str, list[str]]] = {}
    for attr, (default, ranked) in _RULE_VALUES.items():
        category = next((c for c in ranked if c in cats), None)
        out[attr] = (ranked[category], cats[category]) if category is not None else (default, [])
    return out


# ----------------------------------------------------------------------- features
def extract(
    text: str, start: int, end: int, rules: Sequence[CueRule]
) -> tuple[list[str], dict[str, tuple[str, list[str]]]]:
    """Features and the rule decision for the concept ``text[start:end]``."""
    s, e = _sentence_bounds(text, start, end)
    lower = text[s:e].lower()
    cs, ce = start - s, end - s
    left, concept, right = lower[:cs], lower[cs:ce], lower[ce:]
    in_note = _rules_in(rules, text, _NOTE_RULES, True, 16)
    lc, rc = _cues(_rules_in(in_note, lower, _SENTENCE_RULES, False, 256), left, right)
    decision = _rule_decision(lc, rc)
    feats: list[str] = ["BIAS"]
    for attr, (value, _) in decision.items():
        feats.append(f"R:{attr}={value}")
    for r, dist in lc:
        code = _CATEGORY_TO_FEATURE.get(r.category, r.category)
        feats.append(f"CL:{code}")
        feats.append(f"CL:{code}:{min(dist, 6) if dist < 6 else 'far'}")
    for r, dist in rc:
        code = _CATEGORY_TO_FEATURE.get(r.category, r.category)
        feats.append(f"CR:{code}")
        feats.append(f"CR:{code}:{'near' if dist < 3 else 'far'}")
    lt = _TOKEN.findall(left)
    rt = _TOKEN.findall(right)
    ltw = lt[-LEFT_TOKENS:]
    rtw = rt[:RIGHT_TOKENS]
    for i, w in enumerate(reversed(ltw)):
        feats.append(f"L:{w}")
        if i < 3:
            feats.append(f"LN:{w}")
    for a, b in pairwise(ltw):
        feats.append(f"LB:{a}_{b}")
    for i, w in enumerate(rtw):
        feats.append(f"R:{w}")
        if i < 3:
            feats.append(f"RN:{w}")
    for a, b in pairwise(rtw):
        feats.append(f"RB:{a}_{b}")
    for w in _TOKEN.findall(concept):
        feats.append(f"C:{w}")
    # wider left context (section titles such as "family history:" or "past medical history")
    for w in set(lt[:-LEFT_TOKENS]):
        feats.append(f"LF:{w}")
    if not lt:
        feats.append("L:<START>")
    if not rt or rt == ["."]:
        feats.append("R:<END>")
    return feats, decision


# -------------------------------------------------------------------------- model
#: Confident rule decisions that pass through the cascade (chosen by grouped CV on the dev half:
#: hypothetical 0.76 -> 0.93, negated 0.958 -> 0.963; family has too few training rows to learn).
CASCADE_PASS_THROUGH: dict[str, tuple[str, ...]] = {
    "negation": ("negated",),
    "temporality": ("hypothetical",),
    "experiencer": ("family",),
}


def apply_cascade(pred: dict[str, str], decision: Mapping[str, tuple[str, list[str]]]) -> dict[str, str]:
    """Model values with the pass-through rule decisions applied."""
    out = dict(pred)
    for attr, values in CASCADE_PASS_THROUGH.items():
        rule_value, rids = decision[attr]
        if rids and rule_value in values:
            out[attr] = rule_value
    return out


# ---------------------------------------------------------------------------- API
def check_row(text: Any, start: Any, end: Any, *, row: str, concept: str | None = None) -> None:
    """Raise :class:`InputFormatError` naming ``row`` when the concept offsets are bad."""
    if not isinstance(text, str):
        raise InputFormatError(f"row {row}: 'text' must be a string")
    if not text.strip():
        raise InputFormatError(f"row {row}: empty text")
    if len(text) > MAX_TEXT_CHARS:
        raise InputFormatError(f"row {row}: text of {len(text):,} characters exceeds {MAX_TEXT_CHARS:,}")
    if isinstance(start, bool) or isinstance(end, bool) or not isinstance(start, int) or not isinstance(end, int):
        raise OffsetMismatchError(f"row {row}: 'start'/'end' must be integers, got {start!r}, {end!r}")
    if 0 <= start <= len(text) and start >= end:
        raise OffsetMismatchError(
            f"row {row}: concept offsets [{start}, {end}) cover no character (end must exceed start)"
        )
    if not 0 <= start < end <= len(text):
        raise OffsetMismatchError(f"row {row}: concept offsets [{start}, {end}) outside the text (length {len(text)})")
    if concept is not None and text[start:end] != concept:
        raise OffsetMismatchError(
            f"row {row}: offsets [{start}, {end}) cover {text[start:end]!r}, not the concept {concept!r}"
        )


def decide(
    probs: Mapping[str, Mapping[str, float]], decision: Mapping[str, tuple[str, list[str]]]
) -> tuple[dict[str, Any], dict[str, float]]:
    """Attribute values from model probabilities, with the pass-through rule decisions applied.

    Returns the values (plus ``source``: the ``+rules[...]`` suffix naming overriding rules, or
    ``""``) and the per-attribute confidence.
    """
    out: dict[str, Any] = {}
    scores: dict[str, float] = {}
    passed: list[str] = []
    for attr in ATTRIBUTES:
        dist = probs.get(attr)
        value, p = max(dist.items(), key=lambda kv: kv[1]) if dist else (decision[attr][0], 0.5)
        rule_value, rids = decision[attr]
        if rids and rule_value in CASCADE_PASS_THROUGH.get(attr, ()) and rule_value != value:
            value, p = rule_value, 0.9
            passed.extend(rids)
        out[attr] = value
        scores[attr] = round(p, 4)
    out["source"] = f"+rules[{','.join(sorted(set(passed)))}]" if passed else ""
    return out, scores


def classify_one(
    text: str, start: int, end: int, *, model: LinearAssertionModel | None, rules: Sequence[CueRule], rules_id: str
) -> dict[str, Any]:
    """Attributes, per-attribute confidence and provenance for one concept."""
    feats, decision = extract(text, start, end, rules)
    out: dict[str, Any] = {}
    scores: dict[str, float] = {}
    if model is None:
        ids: list[str] = []
        for attr in ATTRIBUTES:
            value, rids = decision[attr]
            out[attr] = value
            scores[attr] = 0.9 if rids else 0.8
            ids.extend(rids)
        out["source"] = f"rules:context@{rules_id}" + (f"[{','.join(sorted(set(ids)))}]" if ids else "")
    else:
        out, scores = decide(model.predict_proba(feats), decision)
        out["source"] = f"model:{model.name}" + out.pop("source")
    out["score"] = round(min(scores.values()), 4)
    out["scores"] = scores
    return out


def _chosen_model(model: Path | None, rules_only: bool) -> LinearAssertionModel | None:
    """The model to classify with: ``model``, else the shipped one when present; None for rules only."""
    if rules_only:
        return None
    if model is not None:
        return load_model(str(model))
    if default_model_available():
        return load_model(None)
    return None


def resolve_mode(mode: str | None, rules_only: bool = False) -> str:
    """``mode`` checked (``rules``, ``linear`` or ``accurate``); ``rules_only`` means ``rules``.

    No ``mode``: :data:`DEFAULT_MODE`, or ``linear`` where the accurate mode cannot run here.
    """
    if rules_only:
        return "rules"
    if mode is None:
        from clinical_nlp.pipeline.assertion_accurate import accurate_available

        return DEFAULT_MODE if DEFAULT_MODE != "accurate" or accurate_available() else "linear"
    chosen = mode
    if chosen not in MODES:
        raise ConfigError(f"unknown assertion mode {chosen!r}; use one of {', '.join(MODES)}")
    return chosen


def classify_assertions(
    rows: Sequence[tuple[str, int, int]],
    *,
    model: Path | None = None,
    rules_only: bool = False,
    rules_path: Path | None = None,
    details: bool = False,
    mode: str | None = None,
    transformer: Path | None = None,
) -> list[dict[str, str]]:
    """Classify the concept ``text[start:end]`` of each row.

    Returns one dict per row with ``negation`` (affirmed/negated/possible),
    ``temporality`` (recent/historical/hypothetical) and ``experiencer``
    (patient/family/other). With ``details=True`` each dict also has
    ``score`` (lowest per-attribute confidence), ``scores`` and ``source``
    (rule ids or model name + version). ``model`` is a directory or JSON file
    written by ``scripts/train_assertion_model.py``; by default the model
    shipped in the package is used (rules only if it is missing). ``mode``:
    ``rules`` (cue rules only, as ``rules_only``), ``linear`` or ``accurate``
    (the linear cascade plus the MiniLM model ``transformer``, default the shipped one,
    on the rows the linear model is unsure of); default :data:`DEFAULT_MODE`.
    """
    chosen = resolve_mode(mode, rules_only)
    rules, rid = load_cue_rules(str(rules_path) if rules_path else None)
    mdl = _chosen_model(model, chosen == "rules")
    triples = []
    for k, row in enumerate(rows):
        try:
            text, start, end = row
        except (TypeError, ValueError):
            raise InputFormatError(f"row {k}: expected (text, start, end), got {row!r}") from None
        check_row(text, start, end, row=str(k))
        triples.append((plain_text(text), start, end))
    if chosen == "accurate" and mdl is not None:
        from clinical_nlp.pipeline.assertion_accurate import classify_accurate, load_transformer

        tm = load_transformer(str(transformer) if transformer else None)
        out = classify_accurate(triples, linear=mdl, transformer=tm, rules_path=rules_path)
    else:
        out = [classify_one(t, s, e, model=mdl, rules=rules, rules_id=rid) for t, s, e in triples]
    if not details:
        out = [{a: res[a] for a in ATTRIBUTES} for res in out]
    return out


def iter_classified(
    rows: Iterable[tuple[str, str, int, int, str | None]],
    *,
    model: Path | None = None,
    rules_only: bool = False,
    mode: str | None = None,
    batch_size: int = 256,
):
    """Stream ``(row_id, result)`` for ``(row_id, text, start, end, concept)`` tuples (checks each row).

    The accurate mode classifies ``batch_size`` rows at a time (the transformer is batched).
    """
    chosen = resolve_mode(mode, rules_only)
    rules, rid = load_cue_rules(None)
    mdl = _chosen_model(model, chosen == "rules")
    if chosen != "accurate" or mdl is None:
        for row_id, text, start, end, concept in rows:
            check_row(text, start, end, row=row_id, concept=concept)
            yield row_id, classify_one(plain_text(text), start, end, model=mdl, rules=rules, rules_id=rid)
        return
    from clinical_nlp.pipeline.assertion_accurate import classify_accurate, load_transformer

    tm = load_transformer(None)
    batch: list[tuple[str, tuple[str, int, int]]] = []

    def flush():
        res = classify_accurate([t for _, t in batch], linear=mdl, transformer=tm)
        yield from zip([i for i, _ in batch], res, strict=True)
        batch.clear()

    for row_id, text, start, end, concept in rows:
        check_row(text, start, end, row=row_id, concept=concept)
        batch.append((row_id, (plain_text(text), start, end)))  # zero-width spaces read as spaces
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()
