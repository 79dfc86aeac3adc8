"""The accurate assertion mode: the linear cascade decides where it is confident, MiniLM joins where not.

Every row goes through the cue rules and the linear model (fast). A row whose lowest linear
confidence is below :data:`ROUTE_BELOW` is also read by the transformer
(:mod:`clinical_nlp.models.assertion_transformer`, batched); its calibrated probabilities are
blended with the linear ones (weight :data:`TRANSFORMER_WEIGHT`) before the pass-through rules
apply. Both are chosen by grouped cross-validation on the development reports and stored in the
model's meta (``scripts/train_assertion_transformer.py``; RESULTS.md has the figures); the
constants here are the fallbacks.

Example:
    >>> classify_accurate([("No fever today.", 3, 8)])[0]["negation"]  # doctest: +SKIP
    'negated'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from clinical_nlp.pipeline.assertion import ATTRIBUTES, LinearAssertionModel, decide, extract, load_cue_rules

#: Rows whose lowest linear confidence is below this are also read by the transformer.
ROUTE_BELOW = 0.9
#: Weight of the transformer's probabilities in the blend (the linear model has the rest).
TRANSFORMER_WEIGHT = 0.3


@lru_cache(maxsize=2)
def load_transformer(path: str | None = None) -> Any:
    """The transformer assertion model (default: the one shipped in the package), loaded once.

    Run by ONNX Runtime when the directory has an exported graph (no torch or transformers
    import: about 4 s less per process, same logits to 1e-5), else by torch.
    """
    from clinical_nlp.models.assertion_onnx import OnnxAssertionModel, onnx_available
    from clinical_nlp.models.assertion_transformer import DEFAULT_TRANSFORMER_DIR, TransformerAssertionModel

    where = Path(path) if path else DEFAULT_TRANSFORMER_DIR
    if onnx_available(where):
        return OnnxAssertionModel.load(where)
    return TransformerAssertionModel.load(where)


def transformer_available() -> bool:
    from clinical_nlp.models.assertion_transformer import DEFAULT_TRANSFORMER_DIR, WEIGHTS_FILE

    return (DEFAULT_TRANSFORMER_DIR / WEIGHTS_FILE).exists()


@lru_cache(maxsize=1)
def accurate_available() -> bool:
    """Whether the shipped MiniLM model can run here: its weights, the base MiniLM, a runtime."""
    import importlib.util

    from clinical_nlp.errors import ModelError
    from clinical_nlp.models.assertion_onnx import onnx_available
    from clinical_nlp.models.assertion_transformer import DEFAULT_TRANSFORMER_DIR
    from clinical_nlp.models.embeddings import default_transformer_dir

    try:
        base = default_transformer_dir()
    except ModelError:
        return False
    runtime = onnx_available(DEFAULT_TRANSFORMER_DIR) or importlib.util.find_spec("torch") is not None
    return transformer_available() and base.is_dir() and runtime


def blend(
    linear: Mapping[str, Mapping[str, float]], other: Mapping[str, Mapping[str, float]], weight: float
) -> dict[str, dict[str, float]]:
    """``weight * other + (1 - weight) * linear`` per attribute (a class one side lacks counts 0)."""
    out = {}
    for attr in ATTRIBUTES:
        a, b = linear.get(attr, {}), other.get(attr, {})
        out[attr] = {c: (1 - weight) * a.get(c, 0.0) + weight * b.get(c, 0.0) for c in {*a, *b}}
    return out


def needs_transformer(probs: Mapping[str, Mapping[str, float]], route_below: float = ROUTE_BELOW) -> bool:
    return min(max(p.values()) for p in probs.values()) < route_below


def classify_accurate(
    rows: Sequence[tuple[str, int, int]],
    *,
    linear: LinearAssertionModel,
    transformer: Any,
    rules_path: Path | None = None,
    route_below: float | None = None,
    weight: float | None = None,
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """Attributes, ``score``, ``scores`` and ``source`` per row (rows already checked).

    ``route_below`` and ``weight`` default to the values chosen when the transformer was trained
    (its ``meta``), else :data:`ROUTE_BELOW` and :data:`TRANSFORMER_WEIGHT`.
    """
    meta = getattr(transformer, "meta", {})
    route_below = float(meta.get("route_below", ROUTE_BELOW)) if route_below is None else route_below
    weight = float(meta.get("weight", TRANSFORMER_WEIGHT)) if weight is None else weight
    rules, _ = load_cue_rules(str(rules_path) if rules_path else None)
    prepared = [extract(t, s, e, rules) for t, s, e in rows]
    probs = [linear.predict_proba(feats) for feats, _ in prepared]
    routed = [i for i, p in enumerate(probs) if needs_transformer(p, route_below)]
    if routed:
        extra = transformer.predict_proba([rows[i] for i in routed], batch_size=batch_size)
        for i, p in zip(routed, extra, strict=True):
            probs[i] = blend(probs[i], p, weight)
    out = []
    joined = set(routed)
    for i, (_, decision) in enumerate(prepared):
        res, scores = decide(probs[i], decision)
        name = f"model:{linear.name}" + (f"+{transformer.name}" if i in joined else "")
        res["source"] = name + res.pop("source")
        res["score"] = round(min(scores.values()), 4)
        res["scores"] = scores
        out.append(res)
    return out
