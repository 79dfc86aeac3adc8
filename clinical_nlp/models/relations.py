"""Relations between given entity spans: a linear classifier over ordered span pairs.

Candidates are ordered pairs of spans on the same line of the text, at most ``MAX_GAP`` characters
apart, whose label pair occurs with some relation type in the training data. Each candidate gets a
type or ``NONE`` from a multinomial logistic regression (scikit-learn) over features of the pair:
both labels and their order, the distance, the words and entities between, punctuation and
coordinators between, whether each is the other's nearest span of its label. Chia's group relations
(``OR``/``AND`` with ``args``) are learned as links between consecutive members. Scores are the
classifier's probabilities; the regularisation is chosen on the development file.

Example:
    >>> t1 = {"id": "T1", "start": 0, "end": 5, "label": "Measurement"}
    >>> t2 = {"id": "T2", "start": 6, "end": 10, "label": "Value"}
    >>> row = {"id": "n1", "text": "HbA1c > 7%", "spans": [t1, t2],
    ...        "relations": [{"type": "Has_value", "arg1": "T1", "arg2": "T2"}]}
    >>> gold_pairs(row)
    {('T1', 'T2'): 'Has_value'}
"""

from __future__ import annotations

import itertools
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.errors import ConfigError, InputFormatError
from clinical_nlp.models.relation_ranks import SpanRanks

NONE = "NONE"
WEIGHTS_FILE = "relations.npz"
MINILM_DIR = "minilm"
#: rows scored by the MiniLM scorer together (bounds the frozen states held in memory)
SCORER_CHUNK = 256
#: blend weights of the MiniLM scorer tried on the development file (0: the linear model alone)
BLEND_GRID = (0.0, 0.3, 0.5, 0.7)
DEFAULT_RELATION_MODEL_DIR = Path(__file__).resolve().parent.parent / "resources" / "relations" / "default"
MAX_GAP = 150
MODIFIER_TYPES = ("Has_value", "Has_temporal", "Has_negation", "Has_qualifier", "Has_multiplier", "Has_mood")
C_GRID = (0.3, 1.0)
MODIFIER_THRESHOLDS = (0.1, 0.15, 0.2, 0.3, 0.4)
#: the other types (coordination, Subsumes, Has_index …): a link from this probability on
THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.5)
_WORD = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")

Row = Mapping[str, Any]


def gold_pairs(row: Row) -> dict[tuple[str, str], str]:
    """``{(arg1 id, arg2 id): type}``; a group relation (``args``) links consecutive members."""
    out: dict[tuple[str, str], str] = {}
    for rel in row.get("relations") or []:
        if "arg1" in rel and "arg2" in rel:
            out[(str(rel["arg1"]), str(rel["arg2"]))] = str(rel["type"])
        elif isinstance(rel.get("args"), list):
            args = [str(a) for a in rel["args"]]
            for a, b in zip(args, args[1:], strict=False):
                out[(a, b)] = str(rel["type"])
    return out


def _spans(row: Row) -> list[dict[str, Any]]:
    spans = []
    for s in row.get("spans") or []:
        if "id" not in s:
            raise InputFormatError(f"note {row.get('id')!r}: a span has no 'id' (relations refer to span ids)")
        spans.append({"id": str(s["id"]), "start": int(s["start"]), "end": int(s["end"]), "label": str(s["label"])})
    return sorted(spans, key=lambda s: (s["start"], s["end"]))


def candidates(row: Row, allowed: set[tuple[str, str]] | None) -> list[tuple[dict, dict]]:
    """Ordered pairs of distinct spans on one line, close enough, with a label pair seen in training."""
    text, spans = str(row["text"]), _spans(row)
    out = []
    for a in spans:
        for b in spans:
            if a is b:
                continue
            lo, hi = (a, b) if a["start"] <= b["start"] else (b, a)
            gap = text[lo["end"] : hi["start"]] if hi["start"] >= lo["end"] else ""
            if "\n" in gap or len(gap) > MAX_GAP:
                continue
            if allowed is not None and (a["label"], b["label"]) not in allowed:
                continue
            out.append((a, b))
    return out


def _bucket(n: int) -> str:
    return str(n) if n < 4 else "4-7" if n < 8 else "8-15" if n < 16 else "16+"


def features(
    row: Row,
    a: dict,
    b: dict,
    spans: Sequence[dict],
    allowed: set[tuple[str, str]] | None = None,
    ranks: SpanRanks | None = None,
) -> list[str]:
    """Feature names of the ordered pair (a, b); with ``allowed`` (the label pairs seen in training) also
    a's rank by distance among the spans that could head b, overall and on its side, and b's rank among
    the spans of its label near a. ``ranks``: the row's :class:`SpanRanks`, shared by its pairs."""
    ranks = ranks if ranks is not None else SpanRanks(spans, allowed)
    text = str(row["text"])
    forward = a["start"] <= b["start"]
    lo, hi = (a, b) if forward else (b, a)
    gap = text[lo["end"] : hi["start"]] if hi["start"] >= lo["end"] else ""
    words = [w.lower() for w in _WORD.findall(gap)]
    between = [s for s in spans if s["start"] >= lo["end"] and s["end"] <= hi["start"]]
    pair = f"{a['label']}>{b['label']}"
    order = "ab" if forward else "ba"
    feats = [f"pair={pair}", f"pair_order={pair}|{order}", f"la={a['label']}", f"lb={b['label']}", f"order={order}",
             f"ntok={_bucket(len(words))}", f"pair_ntok={pair}|{_bucket(len(words))}",
             f"nbetween={_bucket(len(between))}", f"pair_nbetween={pair}|{_bucket(len(between))}"]  # fmt: skip
    feats += [f"bw={w}" for w in words[:8]]
    feats += [f"bword={w}|{b['label']}" for w in _WORD.findall(text[b["start"] : b["end"]].lower())[:3]]
    feats += [f"aword={w}|{a['label']}" for w in _WORD.findall(text[a["start"] : a["end"]].lower())[-2:]]
    if words:
        feats += [f"first={words[0]}", f"last={words[-1]}"]
    else:
        feats.append("adjacent")
    feats += [f"between_label={s['label']}" for s in between[:4]]
    if any(s["label"] == b["label"] for s in between) or any(s["label"] == a["label"] for s in between):
        feats.append("same_label_between")
    for w in ("or", "and", ",", "(", ")", ";", "with", "of", "for", "within", "than", "no", "without"):
        if w in words:
            feats.append(f"has={w}|{pair}")
    if ranks.is_nearest(a, b):
        feats.append(f"b_nearest_of_its_label|{pair}")
    if ranks.is_nearest(b, a):
        feats.append(f"a_nearest_of_its_label|{pair}")
    if allowed is not None:
        feats += ranks.rank_features(a, b, pair)
    return feats


def _one_per_argument(rels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The links that are both their arg1's and their arg2's best of their type (highest score)."""
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rels:
        for key in ((r["type"], "arg1", r["arg1"]), (r["type"], "arg2", r["arg2"])):
            if key not in best or r["score"] > best[key]["score"]:
                best[key] = r
    return [r for r in rels if best[(r["type"], "arg1", r["arg1"])] is r and best[(r["type"], "arg2", r["arg2"])] is r]


def _rel(kind: str, a: dict, b: dict, score: float) -> dict[str, Any]:
    return {"type": kind, "arg1": a["id"], "arg2": b["id"], "score": round(float(score), 4)}


@dataclass
class RelationModel:
    vocab: dict[str, int]
    classes: list[str]
    coef: np.ndarray
    intercept: np.ndarray
    allowed: set[tuple[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    #: a modifier's best head is kept from this probability on (it has one head, so the bar can be lower)
    modifier_threshold: float = 0.35
    #: the head/modifier rank features (models saved before they existed have none)
    rank_features: bool = False
    #: each span keeps only its best link of each non-modifier type as arg1 and as arg2 (Chia train:
    #: 98% of OR, AND and Subsumes arg2s have one such link, 92-98% of their arg1s)
    one_per_argument: bool = False
    #: an optional MiniLM pair scorer (:mod:`clinical_nlp.models.relations_minilm`) and its blend weight
    scorer: Any = None
    blend: float = 0.0
    #: isotonic map ``{"x": [...], "y": [...]}`` of link scores to the share correct on development
    #: links; applied to the output scores only, after every decision
    calibration: dict[str, list[float]] | None = None

    def _matrix(self, rows: list[list[str]]):
        from scipy.sparse import csr_matrix

        data, indices, indptr = [], [], [0]
        for fs in rows:
            idx = sorted({self.vocab[f] for f in fs if f in self.vocab})
            indices += idx
            data += [1.0] * len(idx)
            indptr.append(len(indices))
        return csr_matrix((data, indices, indptr), shape=(len(rows), len(self.vocab)))

    def proba(self, feats: list[list[str]]) -> np.ndarray:
        z = self._matrix(feats) @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, rows: Iterable[Row]) -> list[list[dict[str, Any]]]:
        """Per row, the relations ``{type, arg1, arg2, score}`` over its span ids."""
        return [self.decode(cands, probs) for cands, probs in self.score_candidates(rows)]

    def score_candidates(self, rows: Iterable[Row]) -> list[tuple[list[tuple[dict, dict]], np.ndarray]]:
        """Per row its candidate pairs and their class probabilities (what :meth:`decode` turns into links);
        with a scorer, ``blend * scorer + (1 - blend) * linear``, :data:`SCORER_CHUNK` rows at a time."""
        out: list[tuple[list[tuple[dict, dict]], np.ndarray]] = []
        chunk: list[Row] = []
        for row in rows:
            spans = _spans(row)
            cands = candidates(row, self.allowed)
            allowed = self.allowed if self.rank_features else None
            ranks = SpanRanks(spans, allowed)
            feats = [features(row, a, b, spans, allowed, ranks) for a, b in cands]
            probs = self.proba(feats) if cands else np.zeros((0, 1))
            out.append((cands, probs))
            chunk.append(row)
            if self.scorer is not None and self.blend > 0 and len(chunk) >= SCORER_CHUNK:
                out[-len(chunk) :] = self._blend(chunk, out[-len(chunk) :])
                chunk = []
        if self.scorer is not None and self.blend > 0 and chunk:
            out[-len(chunk) :] = self._blend(chunk, out[-len(chunk) :])
        return out

    def _blend(self, rows: list[Row], scored: list[tuple[list[tuple[dict, dict]], np.ndarray]]) -> list:
        extra = self.scorer.pair_probs(rows, [c for c, _ in scored])
        w = self.blend
        return [(c, (1 - w) * p + w * q) if c else (c, p) for (c, p), q in zip(scored, extra, strict=True)]

    def decode(self, cands: Sequence[tuple[dict, dict]], probs: np.ndarray) -> list[dict[str, Any]]:
        """Links from scored candidates: a modifier keeps its best head from ``modifier_threshold`` on; any
        other pair its likeliest non-modifier type from ``threshold`` on (even where NONE is likelier),
        with ``one_per_argument`` only where it is both arguments' best link of that type."""
        rels: list[dict[str, Any]] = []
        best_head: dict[str, dict[str, Any]] = {}  # a modifier has one head (97% of Chia's)
        modifier = [i for i, c in enumerate(self.classes) if c in MODIFIER_TYPES]
        other = [i for i, c in enumerate(self.classes) if c != NONE and c not in MODIFIER_TYPES]
        for (a, b), p in zip(cands, probs, strict=True):
            if modifier:  # the pair's best modifier type, even where NONE is likelier
                m = max(modifier, key=lambda i: p[i])
                held = best_head.get(b["id"])
                if held is None or p[m] > held["score"]:
                    best_head[b["id"]] = _rel(self.classes[m], a, b, p[m])
            if other:
                k = max(other, key=lambda i: p[i])
                if p[k] >= self.threshold and p[k] >= max((p[i] for i in modifier), default=0.0):
                    rels.append(_rel(self.classes[k], a, b, p[k]))
        if self.one_per_argument:
            rels = _one_per_argument(rels)
        rels += [r for r in best_head.values() if r["score"] >= self.modifier_threshold]
        if self.calibration:
            for r in rels:
                r["score"] = round(float(np.interp(r["score"], self.calibration["x"], self.calibration["y"])), 4)
        return sorted(rels, key=lambda r: (r["arg1"], r["arg2"]))

    def save(self, directory: Path | str) -> Path:
        """``relations.json`` (classes, vocabulary, thresholds, meta) and ``relations.npz`` (float16 weights)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        body = {
            "kind": "relations-linear",
            "classes": self.classes,
            "vocab": sorted(self.vocab, key=self.vocab.__getitem__),
            "weights": WEIGHTS_FILE,
            "allowed": sorted(list(p) for p in self.allowed),
            "threshold": self.threshold,
            "modifier_threshold": self.modifier_threshold,
            "rank_features": self.rank_features,
            "one_per_argument": self.one_per_argument,
            "calibration": self.calibration,
            "meta": self.meta,
            **({"minilm": {"dir": MINILM_DIR, "weight": self.blend}} if self.scorer is not None else {}),
        }
        np.savez_compressed(path / WEIGHTS_FILE, coef=self.coef.astype(np.float16), intercept=self.intercept)
        if self.scorer is not None:
            self.scorer.save(path / MINILM_DIR)
        out = path / "relations.json"
        out.write_text(json.dumps(body), encoding="utf-8")
        return out


def load_relation_model(directory: Path | str) -> RelationModel:
    """A model written by :meth:`RelationModel.save` (or an older single-JSON one); ConfigError otherwise."""
    path = Path(directory)
    path = path / "relations.json" if path.is_dir() else path
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("kind") != "relations-linear":
            raise ConfigError(f"{path}: not a relation model (kind {body.get('kind')!r})")
        if "weights" in body:
            with np.load(path.parent / str(body["weights"])) as w:
                coef, intercept = w["coef"].astype(np.float64), w["intercept"].astype(np.float64)
            vocab = {str(f): i for i, f in enumerate(body["vocab"])}
        else:  # the first format: weights and vocabulary inline
            coef, intercept, vocab = np.array(body["coef"]), np.array(body["intercept"]), dict(body["vocab"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path}: not a relation model written by 'clinical-nlp train relations' ({exc})") from None
    if coef.shape != (len(body["classes"]), len(vocab)):
        raise ConfigError(
            f"{path}: weights {coef.shape} do not match {len(body['classes'])} classes x {len(vocab)} features"
        )
    model = RelationModel(
        vocab, body["classes"], coef, intercept, {tuple(p) for p in body["allowed"]}, body.get("meta", {}),
        float(body.get("threshold", 0.5)), float(body.get("modifier_threshold", 0.35)),
        bool(body.get("rank_features", False)), bool(body.get("one_per_argument", False)),
        calibration=body.get("calibration"),
    )  # fmt: skip
    if body.get("minilm"):
        from clinical_nlp.models.relations_onnx import load_pair_scorer

        model.scorer = load_pair_scorer(path.parent / str(body["minilm"]["dir"]))
        model.blend = float(body["minilm"]["weight"])
        if model.scorer.classes != model.classes:
            raise ConfigError(f"{path}: the MiniLM scorer's classes differ from the linear model's")
    return model


def default_relation_model_dir() -> Path | None:
    """The relation model shipped with the package (``make model``), or None when it has not been built."""
    return DEFAULT_RELATION_MODEL_DIR if (DEFAULT_RELATION_MODEL_DIR / "relations.json").exists() else None


def resolve_relation_model_dir(given: Path | str | None, option: str) -> Path:
    """A relation model option's directory: ``default`` (or nothing) is the shipped model."""
    if given is not None and str(given) != "default":
        return Path(given)
    found = default_relation_model_dir()
    if found is None:
        raise ConfigError(f"{option} default: the shipped relation model is not built (make model)")
    return found


def _examples(rows: Sequence[Row], allowed: set[tuple[str, str]]) -> tuple[list[list[str]], list[str]]:
    X, y = [], []
    for row in rows:
        gold, spans = gold_pairs(row), _spans(row)
        ranks = SpanRanks(spans, allowed)
        for a, b in candidates(row, allowed):
            X.append(features(row, a, b, spans, allowed, ranks))
            y.append(gold.get((a["id"], b["id"]), NONE))
    return X, y


def fit(rows: Sequence[Row], C: float) -> RelationModel:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    allowed = set()
    for row in rows:
        labels = {s["id"]: s["label"] for s in _spans(row)}
        for a, b in gold_pairs(row):
            if a in labels and b in labels:
                allowed.add((labels[a], labels[b]))
    X, y = _examples(rows, allowed)
    if not X or len(set(y)) < 2:
        raise InputFormatError("no relations to learn from in the training file")
    vec = DictVectorizer()
    M = vec.fit_transform([{f: 1 for f in fs} for fs in X])
    clf = LogisticRegression(C=C, max_iter=3000)
    clf.fit(M, y)
    vocab = {str(f): i for i, f in enumerate(vec.get_feature_names_out())}
    # float16 weights (what save writes): the model in memory predicts exactly as the one loaded
    clf.coef_ = clf.coef_.astype(np.float16).astype(np.float64)
    return RelationModel(
        vocab, [str(c) for c in clf.classes_], clf.coef_, clf.intercept_, allowed, {"C": C}, rank_features=True
    )


def evaluate(
    model: RelationModel | None, rows: Sequence[Row], predictions: Sequence[Sequence[Mapping[str, Any]]] | None = None
) -> dict[str, Any]:
    """Directed micro P/R/F1 over all types, over the binary ones only (gold given as ``arg1``/``arg2``, not as
    an ``args`` group), over the modifier types, and per type."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    group_types = {str(r.get("type")) for row in rows for r in row.get("relations") or [] if "args" in r}
    if predictions is None:
        if model is None:
            raise ValueError("evaluate needs a model or its predictions")
        predictions = model.predict(rows)
    preds = predictions
    for row, pred in zip(rows, preds, strict=True):
        gold = gold_pairs(row)
        got = {(r["arg1"], r["arg2"]): r["type"] for r in pred}
        for key, t in got.items():
            (tp if gold.get(key) == t else fp)[t] += 1
        for key, t in gold.items():
            if got.get(key) != t:
                fn[t] += 1

    def prf(types: Iterable[str]) -> dict[str, float]:
        ts = list(types)
        a, b, c = sum(tp[t] for t in ts), sum(fp[t] for t in ts), sum(fn[t] for t in ts)
        p, r = (a / (a + b) if a + b else 0.0), (a / (a + c) if a + c else 0.0)
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
                "gold": a + c}  # fmt: skip

    every = sorted(set(tp) | set(fn) | set(fp))
    return {
        "all": prf(every),
        "binary": prf(t for t in every if t not in group_types),
        "modifiers": prf(MODIFIER_TYPES),
        "per_type": {t: prf([t]) for t in every},
    }


def _choose_decoding(
    model: RelationModel, dev: Sequence[Row], scored: list, tried: dict[str, float], tag: str
) -> tuple[float, float, float, bool, dict[str, Any]]:
    """The best ``(all-link F1, modifier threshold, threshold, one_per_argument, scores)`` on ``dev``."""
    best: tuple[float, float, float, bool, dict[str, Any]] | None = None
    for th, other, one in itertools.product(MODIFIER_THRESHOLDS, THRESHOLDS, (False, True)):
        model.modifier_threshold, model.threshold, model.one_per_argument = th, other, one
        scores = evaluate(model, dev, [model.decode(c, p) for c, p in scored])
        tried[f"{tag},modifier_threshold={th},threshold={other},one_per_argument={one}"] = scores["all"]["f1"]
        if best is None or scores["all"]["f1"] > best[0]:
            best = (scores["all"]["f1"], th, other, one, scores)
    assert best is not None
    return best


def fit_calibration(model: RelationModel, dev: Sequence[Row]) -> dict[str, list[float]] | None:
    """Isotonic regression of "the link is right" on the link's score over ``dev``'s predicted links."""
    from sklearn.isotonic import IsotonicRegression

    model.calibration = None
    points = [(r["score"], float(gold_pairs(row).get((r["arg1"], r["arg2"])) == r["type"]))
              for row, pred in zip(dev, model.predict(dev), strict=True) for r in pred]  # fmt: skip
    if len(points) < 20 or len({c for _, c in points}) < 2:
        return None
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(*zip(*points, strict=True))
    return {"x": [float(v) for v in iso.X_thresholds_], "y": [round(float(v), 4) for v in iso.y_thresholds_]}


def train_relations(
    train: Sequence[Row], dev: Sequence[Row], *, progress: Any = None, minilm: Any = None, minilm_progress: Any = None
) -> tuple[RelationModel, dict[str, Any]]:
    """Fit on ``train`` for each C of ``C_GRID``; choose C, the modifier threshold and the threshold of the
    other types by micro-F1 over all types on ``dev`` (development data); the dev metrics go into the meta.

    ``minilm`` (a :class:`~clinical_nlp.models.relations_minilm.PairTrainConfig`): also fine-tune the
    MiniLM pair scorer on ``train`` and choose its blend weight (:data:`BLEND_GRID`, 0 = not used) and
    the thresholds again on ``dev``.
    """
    best: tuple[float, float, float, float, bool, dict[str, Any]] | None = None
    models: dict[float, RelationModel] = {}
    tried: dict[str, float] = {}
    for C in C_GRID:
        models[C] = model = fit(train, C)
        scored = model.score_candidates(dev)  # the probabilities once; each threshold only decodes
        f1, th, other, one, scores = _choose_decoding(model, dev, scored, tried, f"C={C}")
        if best is None or f1 > best[0]:
            best = (f1, C, th, other, one, scores)
        if progress:
            progress(1)
    assert best is not None
    f1, C, th, other, one, scores = best
    model = models[C]
    blend = 0.0
    if minilm is not None:
        from clinical_nlp.models.relations_minilm import train_pair_scorer

        scorer, losses = train_pair_scorer(train, model, minilm, minilm_progress)
        linear = model.score_candidates(dev)
        extra = scorer.pair_probs(dev, [c for c, _ in linear])
        for w in BLEND_GRID[1:]:
            mixed = [(c, (1 - w) * p + w * q) if c else (c, p) for (c, p), q in zip(linear, extra, strict=True)]
            got = _choose_decoding(model, dev, mixed, tried, f"C={C},blend={w}")
            if got[0] > f1:
                (f1, th, other, one, scores), blend = got, w
        if blend > 0:
            model.scorer, model.blend = scorer, blend
        model.meta["minilm"] = {"epochs": minilm.epochs, "top_layers": minilm.top_layers, "losses": losses,
                                "blend": blend, "used": blend > 0}  # fmt: skip
    model.modifier_threshold, model.threshold, model.one_per_argument = th, other, one
    model.calibration = fit_calibration(model, dev)
    model.meta.update({"C": C, "modifier_threshold": th, "threshold": other, "one_per_argument": one,
                       "dev": scores, "tried": tried,
                       "train_rows": len(train), "dev_rows": len(dev)})  # fmt: skip
    return model, scores
