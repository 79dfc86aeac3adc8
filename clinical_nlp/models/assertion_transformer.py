"""Learned assertion: MiniLM over the sentence with the concept marked, one calibrated head per attribute.

The encoder is the packaged all-MiniLM-L6-v2 (or any local BERT-style checkpoint): its lower
layers stay frozen, its top ``top_layers`` layers are fine-tuned together with three linear heads
(negation, temporality, experiencer) over ``[CLS state; mean of the concept's word pieces]``.
Only the fine-tuned layers and the heads are saved (fp16 safetensors, a few MB); loading rebuilds
the model from the base checkpoint, checked by the hash of its weights file. Each head's logits
are divided by a temperature fitted on held-out rows, so probabilities are calibrated.

Example:
    >>> model = TransformerAssertionModel.load(DEFAULT_TRANSFORMER_DIR)  # doctest: +SKIP
    >>> model.predict_proba([("No fever today.", 3, 8)])[0]["negation"]  # doctest: +SKIP
    {'affirmed': 0.01, 'negated': 0.98, 'possible': 0.01}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.models.embeddings import default_transformer_dir, load_minilm
from clinical_nlp.models.top_layers import (  # noqa: F401  (re-exported)
    META_FILE,
    WEIGHTS_FILE,
    base_encoder,
    base_weights_hash,
    file_sha,
    read_top,
    run_layers,
    trainable_top,
    write_top,
)

CLASSES: dict[str, tuple[str, ...]] = {
    "negation": ("affirmed", "negated", "possible"),
    "temporality": ("recent", "historical", "hypothetical"),
    "experiencer": ("patient", "family", "other"),
}
DEFAULT_TRANSFORMER_DIR = Path(__file__).resolve().parent.parent / "resources" / "assertion" / "transformer"
#: Characters kept on each side of the concept, and word pieces per row.
CONTEXT_CHARS = 200
MAX_PIECES = 96
OPEN, CLOSE = "<<", ">>"


def marked(text: str, start: int, end: int, section: str | None = None) -> tuple[str, int, int]:
    """The context window with the concept between ``<<`` and ``>>``; the concept's offsets in it.

    A known section title is prepended (``"[section: family history] ..."``) so it can inform
    the model.
    """
    left = text[max(0, start - CONTEXT_CHARS) : start]
    right = text[end : end + CONTEXT_CHARS]
    prefix = f"section: {section.lower()} | " if section else ""
    head = f"{prefix}{left}{OPEN} "
    return f"{head}{text[start:end]} {CLOSE}{right}", len(head), len(head) + (end - start)


def _top_module(encoder: Any, top_layers: int) -> Any:
    """A trainable copy of the encoder's top layers plus the three heads."""
    import torch

    hidden = int(encoder.config.hidden_size)

    class Top(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = trainable_top(encoder, top_layers)
            self.dropout = torch.nn.Dropout(0.1)
            self.heads = torch.nn.ModuleDict({a: torch.nn.Linear(2 * hidden, len(c)) for a, c in CLASSES.items()})

        def forward(self, h: Any, mask: Any, concept: Any) -> dict[str, Any]:
            h = run_layers(self.layers, h, mask)
            weights = concept.to(h.dtype).unsqueeze(-1)
            pooled = (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            feats = self.dropout(torch.cat([h[:, 0], pooled], dim=-1))
            return {a: head(feats) for a, head in self.heads.items()}

    return Top()


@dataclass
class TransformerAssertionModel:
    """Frozen MiniLM base + fine-tuned top layers and heads; ``predict_proba`` is batched."""

    base_dir: Path
    top_layers: int
    top: Any
    temperatures: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CLASSES, 1.0))
    meta: dict[str, Any] = field(default_factory=dict)
    digest: str = ""

    # ------------------------------------------------------------------ build / io
    @classmethod
    def fresh(cls, base_dir: Path | None = None, top_layers: int = 2, seed: int = 0) -> TransformerAssertionModel:
        base, encoder = base_encoder(base_dir, top_layers, seed)
        return cls(base, top_layers, _top_module(encoder, top_layers))

    @classmethod
    def load(cls, path: Path | str, base_dir: Path | None = None) -> TransformerAssertionModel:
        p = Path(path)
        base = Path(base_dir or default_transformer_dir())
        meta, state = read_top(p, "transformer assertion model", base)
        model = cls.fresh(base, int(meta["top_layers"]))
        model.top.load_state_dict(state)
        model.top.train(False)
        model.temperatures = {a: float(t) for a, t in meta["temperatures"].items()}
        model.meta = meta
        model.digest = file_sha(p / WEIGHTS_FILE)[:12]
        return model

    def save(self, path: Path | str) -> Path:
        """Write the top and heads; an ONNX graph exported for an earlier model there is removed."""
        p = Path(path)
        meta = dict(self.meta)
        meta.pop("onnx", None)
        (p / "graph.onnx").unlink(missing_ok=True)
        meta.update(
            top_layers=self.top_layers,
            temperatures={a: round(t, 4) for a, t in self.temperatures.items()},
            classes={a: list(c) for a, c in CLASSES.items()},
        )
        self.digest = write_top(self.top, p, meta, self.base_dir)
        return p

    @property
    def name(self) -> str:
        return f"{self.meta.get('name', 'assertion-minilm')}@{self.meta.get('version', '0')}+{self.digest}"

    # ------------------------------------------------------------------ encode
    def encode(self, rows: Sequence[tuple[str, int, int]], sections: Sequence[str | None] | None = None) -> dict:
        """Word pieces, attention masks and concept masks of ``rows`` (``(text, start, end)``)."""
        import torch

        tok, _ = load_minilm(str(self.base_dir))
        marks = [marked(t, s, e, sections[i] if sections else None) for i, (t, s, e) in enumerate(rows)]
        enc = tok(
            [m[0] for m in marks],
            padding=True,
            truncation=True,
            max_length=MAX_PIECES,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping")
        lo = torch.tensor([m[1] for m in marks])[:, None]
        hi = torch.tensor([m[2] for m in marks])[:, None]
        concept = (offsets[..., 0] >= lo) & (offsets[..., 1] <= hi) & (offsets[..., 1] > offsets[..., 0])
        return {"enc": enc, "concept": concept}

    def frozen_states(self, batch: dict) -> Any:
        """Hidden states entering the fine-tuned layers (no gradient)."""
        import torch

        _, encoder = load_minilm(str(self.base_dir))
        with torch.no_grad():
            out = encoder(**batch["enc"], output_hidden_states=True)
        return out.hidden_states[-self.top_layers - 1]

    # ------------------------------------------------------------------ predict
    def logits(self, rows: Sequence[tuple[str, int, int]], batch_size: int = 64, sections=None) -> dict[str, Any]:
        """Uncalibrated logits per attribute, ``(n_rows, n_classes)`` arrays, rows in input order."""
        import torch

        self.top.train(False)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        out = {a: np.zeros((len(rows), len(c)), dtype=np.float32) for a, c in CLASSES.items()}
        with torch.no_grad():
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                batch = self.encode([rows[i] for i in idx], [sections[i] for i in idx] if sections else None)
                res = self.top(self.frozen_states(batch), batch["enc"]["attention_mask"], batch["concept"])
                for a, v in res.items():
                    out[a][idx] = v.numpy()
        return out

    def predict_proba(self, rows: Sequence[tuple[str, int, int]], batch_size: int = 64, sections=None) -> list[dict]:
        """One ``{attribute: {class: probability}}`` per row (temperature-scaled softmax)."""
        return calibrated(self.logits(rows, batch_size, sections), self.temperatures)


def calibrated(logits: dict[str, np.ndarray], temperatures: dict[str, float]) -> list[dict]:
    """Per row, ``{attribute: {class: probability}}`` from per-attribute logits and temperatures."""
    probs = {a: softmax(v / temperatures.get(a, 1.0)) for a, v in logits.items()}
    n = len(next(iter(probs.values()))) if probs else 0
    return [{a: dict(zip(CLASSES[a], map(float, probs[a][i]), strict=True)) for a in CLASSES} for i in range(n)]


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, gold: Sequence[int]) -> float:
    """The temperature minimising the negative log-likelihood of ``gold`` (grid over 0.5–5)."""
    y = np.asarray(gold)
    best, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.5), np.log(5.0), 41)):
        p = softmax(logits / t)[np.arange(len(y)), y]
        nll = float(-np.log(np.clip(p, 1e-12, None)).mean())
        if nll < best_nll:
            best, best_nll = float(t), nll
    return best
