"""Learned PHI token tagger over hashed lexical/context/lexicon features.

Two model kinds share the features: a linear-chain CRF (python-crfsuite; the
default, ``CRFTagger``) and a multinomial logistic regression (``Tagger``).
Trained on the PhysioNet deid corpus (shared half). Only hashed features are
stored (CRF: hexadecimal hashes of the feature strings; LR: float16 weights per
hash bucket), never the corpus text or its surrogate-name lists.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from clinical_nlp.deid.gazetteer import census_ranks, place_marks, rank_bucket, zipf, zipf_bucket
from clinical_nlp.deid.lexicons import FIRST_SET, HCP_TITLES, LAST_SET, RELATIVE_WORDS
from clinical_nlp.errors import ConfigError

TOKEN_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+|[^\sA-Za-z\d]")
N_FEATURES = 2**18
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "resources" / "deid" / "tagger.npz"
#: Labels the tagger predicts (rules handle the regular forms).
MODEL_LABELS = ("O", "HCPName", "PTName", "RelativeProxyName", "Location", "Date", "Other")


class PHITagger(Protocol):
    """What the detector needs of a tagger: its labels and per-word probabilities over them."""

    labels: tuple[str, ...]

    def proba(self, text: str, toks: Sequence[tuple[int, int]], only: Sequence[int] | None = None) -> np.ndarray: ...


def tokenize(text: str) -> list[tuple[int, int]]:
    """Word, number and single-punctuation tokens as ``(start, end)`` offsets."""
    return [m.span() for m in TOKEN_RE.finditer(text)]


_SHAPE_TABLE = str.maketrans(
    {
        **{c: "X" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
        **{c: "x" for c in "abcdefghijklmnopqrstuvwxyz"},
        **{c: "d" for c in "0123456789"},
    }
)
_REPEAT = re.compile(r"(.)\1+")


_LEXICON_FLAGS = (("hcp", HCP_TITLES), ("rel", RELATIVE_WORDS), ("first", FIRST_SET), ("last", LAST_SET))


def _lexicon_flags(lower: str, offset: int) -> list[str]:
    """``hcp``/``rel``/``first``/``last`` features of a lower-cased word at ``offset``, in that order."""
    return [f"{name}{offset}" for name, words in _LEXICON_FLAGS if lower in words]


@lru_cache(maxsize=200_000)
def _shape(w: str) -> str:
    return _REPEAT.sub(r"\1\1", w.translate(_SHAPE_TABLE))


def _word_feature_names(w: str, upper_note: bool) -> list[str]:
    """The features of a word on its own (no neighbours): shared by the reference features and
    the cached CRF features."""
    lw = w.lower()
    zf, fr, lr = _lex(lw)
    f = [
        "b",
        "w=" + lw,
        "sh=" + _shape(w),
        "suf3=" + lw[-3:],
        "pre2=" + lw[:2],
        "len=" + str(min(len(w), 10)),
        "zf=" + zf,
        "fr=" + fr,
        "lr=" + lr,
        f"fl={fr}{lr}{zf}",
        f"capzf={'U' if upper_note else int(w[:1].isupper())}{zf}",
    ]
    if w[:1].isupper() and not upper_note:
        f.append("title")
    if lw in FIRST_SET:
        f.append("first")
    if lw in LAST_SET:
        f.append("last")
    if upper_note:
        f.append("uppernote")
    return f


def token_features(text: str, toks: Sequence[tuple[int, int]], only: Sequence[int] | None = None) -> list[list[str]]:
    """Feature strings of each token (or of the token indices in ``only``)."""
    words = [text[a:b] for a, b in toks]
    low = [w.lower() for w in words]
    upper_note = sum(w.isupper() for w in words if w.isalpha()) > 0.6 * max(1, sum(w.isalpha() for w in words))
    feats = []
    n = len(toks)
    lex = [_lex(lw) for lw in low]
    places = place_marks(low)
    for i in range(n) if only is None else only:
        f = _word_feature_names(words[i], upper_note)
        for d in (-2, -1, 1, 2):
            j = i + d
            if 0 <= j < n and words[j][:1].isalpha():
                zj, fj, lj = lex[j]
                f.append(f"zf{d}={zj}")
                f.append(f"fl{d}={fj}{lj}")
        if places[i]:
            f.append(f"place{places[i]}")
            if i + 1 < n and places[i + 1]:
                f.append("place+1")
        for d in (-2, -1, 1, 2):
            j = i + d
            tok = low[j] if 0 <= j < n else ("<s>" if j < 0 else "</s>")
            f.append(f"w{d}={tok}")
            if 0 <= j < n:
                f.extend(_lexicon_flags(tok, d))
                if abs(d) == 1:
                    f.append(f"sh{d}=" + _shape(words[j]))
        # newline right before the token (signatures)
        a = toks[i][0]
        if "\n" in text[max(0, a - 3) : a]:
            f.append("bol")
        # previous/next alphabetic words (skipping punctuation such as "Mr." dots)
        pw = next((low[j] for j in range(i - 1, max(-1, i - 4), -1) if words[j].isalpha()), "<s>")
        nw = next((low[j] for j in range(i + 1, min(n, i + 4)) if words[j].isalpha()), "</s>")
        f.append("pw=" + pw)
        f.append("nw=" + nw)
        if pw in _PT_TITLES:
            f.append("pttitle")
        if pw in HCP_TITLES or nw in _CREDENTIALS:
            f.append("hcpctx")
        if pw in RELATIVE_WORDS or nw in RELATIVE_WORDS:
            f.append("relctx")
        feats.append(f)
    return feats


_LEX: dict[str, tuple[str, str, str]] = {}


def _lex(lw: str) -> tuple[str, str, str]:
    """(zipf bucket, census first-name rank bucket, census surname rank bucket) of a lower-cased token."""
    v = _LEX.get(lw)
    if v is None:
        first, last = census_ranks()
        v = (
            (zipf_bucket(zipf(lw)), rank_bucket(first.get(lw)), rank_bucket(last.get(lw)))
            if lw.isalpha()
            else ("n", "n", "n")
        )
        if len(_LEX) < 500_000:
            _LEX[lw] = v
    return v


_PT_TITLES = frozenset({"mr", "mrs", "ms", "miss"})
_CREDENTIALS = frozenset({"rn", "rrt", "np", "md", "lpn", "msw", "pa", "resident", "attending"})


_HASH_CACHE: dict[str, int] = {}


def _hash(feats: Iterable[str]) -> np.ndarray:
    cache = _HASH_CACHE
    out = []
    for s in feats:
        h = cache.get(s)
        if h is None:
            h = zlib.crc32(s.encode()) % N_FEATURES
            if len(cache) < 2_000_000:
                cache[s] = h
        out.append(h)
    return np.array(out, dtype=np.int64)


def _matrix(rows: Sequence[Sequence[str]]):
    from scipy.sparse import csr_matrix

    indptr = [0]
    indices: list[np.ndarray] = []
    for f in rows:
        idx = np.unique(_hash(f))
        indices.append(idx)
        indptr.append(indptr[-1] + len(idx))
    ind = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    return csr_matrix((np.ones(len(ind), dtype=np.float32), ind, np.array(indptr)), shape=(len(rows), N_FEATURES))


def token_labels(text: str, toks: Sequence[tuple[int, int]], spans: Iterable[dict]) -> list[str]:
    labels = ["O"] * len(toks)
    spans = list(spans)
    for i, (a, b) in enumerate(toks):
        for s in spans:
            if a < s["end"] and s["start"] < b:
                lab = s["label"]
                labels[i] = (
                    lab
                    if lab in MODEL_LABELS
                    else ("PTName" if lab == "PTNameInitial" else "Date" if lab == "DateYear" else "Other")
                )
                break
    return labels


@dataclass
class Tagger:
    """Multinomial logistic regression weights over hashed features."""

    coef: np.ndarray  # (n_labels, N_FEATURES)
    intercept: np.ndarray
    labels: tuple[str, ...]

    def proba(self, text: str, toks: Sequence[tuple[int, int]], only: Sequence[int] | None = None) -> np.ndarray:
        """Label probabilities per token (rows follow ``only`` when given)."""
        if not toks or (only is not None and not len(only)):
            return np.zeros((0, len(self.labels)))
        if getattr(self, "_wt", None) is None:
            self._wt = np.ascontiguousarray(self.coef.T, dtype=np.float32)
        X = _matrix(token_features(text, toks, only))
        z = np.asarray(X @ self._wt) + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path | str) -> None:
        np.savez_compressed(
            path, coef=self.coef.astype(np.float16), intercept=self.intercept, labels=np.array(self.labels)
        )


CRF_HASH_BITS = 20


_CRF_HASH: dict[str, str] = {}


def _crf_hash(x: str) -> str:
    h = _CRF_HASH.get(x)
    if h is None:
        h = format(zlib.crc32(x.encode()) & ((1 << CRF_HASH_BITS) - 1), "x")
        if len(_CRF_HASH) < 2_000_000:
            _CRF_HASH[x] = h
    return h


def _crf_items_reference(text: str, toks: Sequence[tuple[int, int]]) -> list[list[str]]:
    """Hashed ``token_features`` (slow reference for :func:`_crf_items`)."""
    return [[_crf_hash(x) for x in f] for f in token_features(text, toks)]


_STATIC: dict[tuple[str, bool], list[str]] = {}
_NEIGH: dict[tuple[str, int], list[str]] = {}
_EDGE = {d: _crf_hash(f"w{d}=" + ("<s>" if d < 0 else "</s>")) for d in (-2, -1, 1, 2)}


def _static(w: str, upper_note: bool) -> list[str]:
    v = _STATIC.get((w, upper_note))
    if v is None:
        v = [_crf_hash(x) for x in _word_feature_names(w, upper_note)]
        if len(_STATIC) < 500_000:
            _STATIC[(w, upper_note)] = v
    return v


def _neigh(w: str, d: int) -> list[str]:
    v = _NEIGH.get((w, d))
    if v is None:
        lw = w.lower()
        f = [f"w{d}={lw}"]
        if w[:1].isalpha():
            zj, fj, lj = _lex(lw)
            f.extend((f"zf{d}={zj}", f"fl{d}={fj}{lj}"))
        f.extend(_lexicon_flags(lw, d))
        if abs(d) == 1:
            f.append(f"sh{d}=" + _shape(w))
        v = [_crf_hash(x) for x in f]
        if len(_NEIGH) < 1_000_000:
            _NEIGH[(w, d)] = v
    return v


def _crf_items(text: str, toks: Sequence[tuple[int, int]]) -> list[list[str]]:
    """Hashed feature names per token: the same features as :func:`token_features`, computed
    with per-word caches (the model never sees or stores the strings themselves)."""
    words = [text[a:b] for a, b in toks]
    n = len(words)
    alpha = [w.isalpha() for w in words]
    n_alpha = sum(alpha)
    upper_note = sum(w.isupper() for w, al in zip(words, alpha, strict=True) if al) > 0.6 * max(1, n_alpha)
    low = [w.lower() for w in words]
    # previous / next alphabetic word within 3 tokens
    prev_alpha: list[str] = []
    last = -10
    for i in range(n):
        prev_alpha.append(low[last] if i - last <= 3 else "<s>")
        if alpha[i]:
            last = i
    next_alpha: list[str] = [""] * n
    nxt = n + 10
    for i in range(n - 1, -1, -1):
        next_alpha[i] = low[nxt] if nxt - i <= 3 else "</s>"
        if alpha[i]:
            nxt = i
    h = _crf_hash
    places = place_marks(low)
    place_h = {1: h("place1"), 2: h("place2")}
    out = []
    for i, (a, _) in enumerate(toks):
        row = list(_static(words[i], upper_note))
        if places[i]:
            row.append(place_h[places[i]])
            if i + 1 < n and places[i + 1]:
                row.append(h("place+1"))
        for d in (-2, -1, 1, 2):
            j = i + d
            if 0 <= j < n:
                row.extend(_neigh(words[j], d))
            else:
                row.append(_EDGE[d])
        if "\n" in text[max(0, a - 3) : a]:
            row.append(h("bol"))
        pw, nw = prev_alpha[i], next_alpha[i]
        row.append(h("pw=" + pw))
        row.append(h("nw=" + nw))
        if pw in _PT_TITLES:
            row.append(h("pttitle"))
        if pw in HCP_TITLES or nw in _CREDENTIALS:
            row.append(h("hcpctx"))
        if pw in RELATIVE_WORDS or nw in RELATIVE_WORDS:
            row.append(h("relctx"))
        out.append(row)
    return out


class CRFTagger:
    """Linear-chain CRF (python-crfsuite) over hashed features; ``proba`` gives per-token marginals
    (P(O) always; the other labels only where P(O) < 0.9999, else 0)."""

    def __init__(self, model: bytes):
        import pycrfsuite

        self.model = model
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open_inmemory(model)
        self.labels = tuple(self._tagger.labels())

    def proba(self, text: str, toks: Sequence[tuple[int, int]], only: Sequence[int] | None = None) -> np.ndarray:
        if not toks or (only is not None and not len(only)):
            return np.zeros((0, len(self.labels)))
        tg = self._tagger
        tg.set(_crf_items(text, toks))
        rows = range(len(toks)) if only is None else only
        marg = tg.marginal
        labels = self.labels
        o = labels.index("O")
        out = np.zeros((len(rows), len(labels)))
        for r, i in enumerate(rows):
            p_o = marg("O", i)
            out[r, o] = p_o
            if p_o < 0.9999:  # the other labels only matter where the word may be PHI (else left at 0)
                for k, y in enumerate(labels):
                    if k != o:
                        out[r, k] = marg(y, i)
        return out

    def __getstate__(self) -> dict:
        return {"model": self.model}

    def __setstate__(self, state: dict) -> None:
        type(self).__init__(self, state["model"])

    def save(self, path: Path | str) -> None:
        np.savez_compressed(path, crf=np.frombuffer(self.model, dtype=np.uint8))


def train_crf(docs: Iterable[dict], *, c1: float = 0.05, c2: float = 0.01, iterations: int = 150) -> CRFTagger:
    """Fit the CRF tagger on rows with ``text`` and gold ``spans``."""
    import os
    import tempfile

    import pycrfsuite

    trainer = pycrfsuite.Trainer(verbose=False)
    for d in docs:
        toks = tokenize(d["text"])
        if toks:
            trainer.append(_crf_items(d["text"], toks), token_labels(d["text"], toks, d.get("spans", [])))
    trainer.set_params({"c1": c1, "c2": c2, "max_iterations": iterations, "feature.possible_transitions": True})
    fd, name = tempfile.mkstemp(suffix=".crfsuite")
    os.close(fd)
    try:
        trainer.train(name)
        return CRFTagger(Path(name).read_bytes())
    finally:
        os.unlink(name)


def train_tagger(docs: Iterable[dict], *, kind: str = "crf", c: float = 4.0, seed: int = 0) -> Tagger | CRFTagger:
    """Fit the tagger (``kind``: ``crf`` or ``lr``) on rows with ``text`` and gold ``spans``."""
    if kind == "crf":
        return train_crf(docs)
    from sklearn.linear_model import LogisticRegression

    rows: list[list[str]] = []
    ys: list[str] = []
    for d in docs:
        toks = tokenize(d["text"])
        rows.extend(token_features(d["text"], toks))
        ys.extend(token_labels(d["text"], toks, d.get("spans", [])))
    X = _matrix(rows)
    clf = LogisticRegression(
        C=c, max_iter=300, class_weight={lab: (1.0 if lab == "O" else 5.0) for lab in set(ys)}, random_state=seed
    )
    clf.fit(X, ys)
    classes = tuple(str(x) for x in clf.classes_)
    coef = clf.coef_ if len(classes) > 2 else np.vstack([-clf.coef_[0], clf.coef_[0]])
    icpt = clf.intercept_ if len(classes) > 2 else np.array([-clf.intercept_[0], clf.intercept_[0]])
    return Tagger(coef.astype(np.float32), icpt.astype(np.float32), classes)


_CACHE: dict[str, Tagger | CRFTagger] = {}


def load_tagger(path: Path | str | None = None) -> Tagger | CRFTagger:
    """Load a saved tagger (default: the packaged one)."""
    p = Path(path or DEFAULT_MODEL)
    key = str(p)
    if key not in _CACHE:
        if not p.exists():
            raise ConfigError(f"{p}: de-identification model not found (train it with scripts/bench_deid.py --save)")
        data = np.load(p, allow_pickle=False)
        if "crf" in data.files:
            _CACHE[key] = CRFTagger(data["crf"].tobytes())
            return _CACHE[key]
        _CACHE[key] = Tagger(
            data["coef"].astype(np.float32), data["intercept"].astype(np.float32), tuple(str(x) for x in data["labels"])
        )
    return _CACHE[key]
