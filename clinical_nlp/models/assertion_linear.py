"""The linear assertion model: one multinomial logistic model per attribute over sparse binary features.

Its weights are a small JSON file (``clinical_nlp/resources/assertion/assertion_linear.json``)
written by ``scripts/train_assertion_model.py`` (``make model``); the features come from
:func:`clinical_nlp.pipeline.assertion.extract`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.errors import ConfigError

MODEL_FILE = "assertion_linear.json"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "resources" / "assertion"


@dataclass
class LinearAssertionModel:
    """One multinomial logistic model per attribute over sparse binary features."""

    weights: dict[str, dict[str, list[float]]]  # attr -> feature -> per-class weights
    classes: dict[str, list[str]]
    meta: dict[str, Any]
    digest: str

    @classmethod
    def load(cls, path: Path | str) -> LinearAssertionModel:
        p = Path(path)
        if p.is_dir():
            p = p / MODEL_FILE
        try:
            raw = p.read_bytes()
            data = json.loads(raw)
            return cls(data["weights"], data["classes"], data.get("meta", {}), hashlib.sha256(raw).hexdigest()[:12])
        except FileNotFoundError:
            raise ConfigError(f"{p}: assertion model not found (run `make model`)") from None
        except (json.JSONDecodeError, KeyError) as exc:
            raise ConfigError(f"{p}: not a clinical-nlp assertion model ({exc})") from None

    def save(self, path: Path | str) -> Path:
        from clinical_nlp.io.jsonl import atomic_writer

        p = Path(path)
        if p.suffix != ".json":
            p = p / MODEL_FILE
        with atomic_writer(p) as fh:
            json.dump({"weights": self.weights, "classes": self.classes, "meta": self.meta}, fh, separators=(",", ":"))
        return p

    def _dense(self) -> tuple[dict[str, int], np.ndarray, list[tuple[str, slice]]]:
        """Feature -> row of one dense weight matrix whose columns are every attribute's classes."""
        dense = getattr(self, "_dense_table", None)
        if dense is None:
            spans, at = [], 0
            for attr, classes in self.classes.items():
                spans.append((attr, slice(at, at + len(classes))))
                at += len(classes)
            rows: dict[str, int] = {}
            for table in self.weights.values():
                for f in table:
                    rows.setdefault(f, len(rows))
            matrix = np.zeros((len(rows) + 1, at))  # the last row: zeros, for an empty feature set
            for attr, cols in spans:
                for f, w in self.weights.get(attr, {}).items():
                    matrix[rows[f], cols] = w
            dense = self._dense_table = (rows, matrix, spans)
        return dense

    def predict_proba(self, feats: Sequence[str]) -> dict[str, dict[str, float]]:
        """``{attribute: {class: probability}}`` (softmax over the classes seen in training)."""
        rows, matrix, spans = self._dense()
        idx = [rows[f] for f in set(feats) if f in rows] or [len(rows)]
        sums = matrix[idx].sum(axis=0)
        out = {}
        for attr, cols in spans:
            scores = sums[cols]
            exps = np.exp(scores - scores.max())
            probs = (exps / exps.sum()).tolist()
            out[attr] = dict(zip(self.classes[attr], probs, strict=True))
        return out

    def predict(self, feats: Sequence[str]) -> dict[str, tuple[str, float]]:
        """``{attribute: (most probable class, its probability)}``."""
        return {attr: max(p.items(), key=lambda kv: kv[1]) for attr, p in self.predict_proba(feats).items()}

    @property
    def name(self) -> str:
        return f"{self.meta.get('name', 'assertion-linear')}@{self.meta.get('version', '0')}+{self.digest}"


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> LinearAssertionModel:
    """Load an assertion model (default: the one shipped in the package)."""
    return LinearAssertionModel.load(Path(path) if path else DEFAULT_MODEL_DIR)


def default_model_available() -> bool:
    return (DEFAULT_MODEL_DIR / MODEL_FILE).exists()
