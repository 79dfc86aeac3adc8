"""The MiniLM assertion model run by ONNX Runtime: no torch or transformers at prediction time.

Importing torch and ``transformers.BertModel`` costs about 4 s of a process's life, more than the
whole of medspaCy's ConText run on a thousand rows. ``make model`` therefore also exports the
assertion model's computation (embeddings, the frozen lower layers, the fine-tuned top and the
heads) as an ONNX graph whose weights are *named inputs*, not stored in it (``graph.onnx``, about
100 kB). Loading feeds it the packaged MiniLM's own weights (``model.safetensors``, read with
safetensors' numpy reader) and the shipped fine-tuned top (``weights.safetensors``), so nothing is
stored twice; the hash checks of :mod:`clinical_nlp.models.top_layers` apply, plus the graph's own
hash recorded in ``meta.json``. Tokenisation is the checkpoint's ``tokenizer.json`` read by
Hugging Face ``tokenizers``, the library behind the fast tokenizer the torch model uses, so both
see the same word pieces (``tests/unit/test_assertion_onnx.py`` compares the two models' logits).

Example:
    >>> model = OnnxAssertionModel.load(DEFAULT_TRANSFORMER_DIR)  # doctest: +SKIP
    >>> model.predict_proba([("No fever today.", 3, 8)])[0]["negation"]["negated"] > 0.9  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.models.assertion_transformer import (
    CLASSES,
    DEFAULT_TRANSFORMER_DIR,
    MAX_PIECES,
    calibrated,
    marked,
)
from clinical_nlp.models.onnx_graph import (
    GRAPH_FILE,
    OPSET,
    export,
    frozen_base,
    open_graph,
    pad_encodings,
    read_meta,
    run_graph,
    word_piece_tokenizer,
)
from clinical_nlp.models.onnx_graph import onnx_available as graph_available
from clinical_nlp.models.top_layers import WEIGHTS_FILE, file_sha

__all__ = ["GRAPH_FILE", "OPSET", "OnnxAssertionModel", "export_graph", "onnx_available"]

INPUTS = ("input_ids", "attention_mask", "token_type_ids", "concept")


def onnx_available(path: Path = DEFAULT_TRANSFORMER_DIR) -> bool:
    """Whether ONNX Runtime is installed and ``path`` holds an exported graph."""
    return graph_available(path)


# ---------------------------------------------------------------------- export (make model; needs torch)
def export_graph(model: Any, path: Path | str) -> str:
    """Write ``model``'s (a saved :class:`TransformerAssertionModel`) graph to ``path``; returns its hash.

    ``path`` must be the directory the model was saved to: the graph's weight sources and hash are
    added to its ``meta.json``.
    """
    full, n_base = frozen_base(
        model.base_dir,
        model.top_layers,
        model.top,
        lambda top, h, mask, concept: tuple(top(h, mask, concept)[a] for a in CLASSES),
    )
    model.top.train(False)
    batch = model.encode([("No fever today.", 3, 8), ("History of diabetes mellitus in the past year.", 11, 28)])
    args = tuple(batch["enc"][k] for k in INPUTS[:3]) + (batch["concept"],)
    axes = {k: {0: "rows", 1: "pieces"} for k in INPUTS} | {a: {0: "rows"} for a in CLASSES}
    return export(full, args, Path(path), list(INPUTS), list(CLASSES), axes, n_base)


# ---------------------------------------------------------------------- prediction (numpy + onnxruntime)
@dataclass
class OnnxAssertionModel:
    """The exported assertion model: same ``predict_proba``, ``name`` and ``meta`` as the torch one."""

    session: Any
    tokenizer: Any
    temperatures: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    #: graph input name -> (array, OrtValue over it): fed by reference on every run, never copied.
    weights: dict[str, tuple[np.ndarray, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path | str = DEFAULT_TRANSFORMER_DIR, base_dir: Path | None = None) -> OnnxAssertionModel:
        from clinical_nlp.models.embeddings import default_transformer_dir

        p = Path(path)
        base = Path(base_dir or default_transformer_dir())
        meta = read_meta(p, "transformer assertion model")
        session, kept, _ = open_graph(p, meta, base)
        tokenizer = word_piece_tokenizer(base, MAX_PIECES)
        temps = {a: float(t) for a, t in meta["temperatures"].items()}
        return cls(session, tokenizer, temps, meta, file_sha(p / WEIGHTS_FILE)[:12], kept)

    @property
    def name(self) -> str:
        return f"{self.meta.get('name', 'assertion-minilm')}@{self.meta.get('version', '0')}+{self.digest}"

    def encode(self, rows: Sequence[tuple[str, int, int]], sections: Sequence[str | None] | None = None) -> dict:
        """The graph's four inputs for ``rows`` (padded to the longest row)."""
        marks = [marked(t, s, e, sections[i] if sections else None) for i, (t, s, e) in enumerate(rows)]
        out, offsets = pad_encodings(self.tokenizer.encode_batch([m[0] for m in marks]))
        concept = np.zeros(out["input_ids"].shape, dtype=bool)
        for i, (spans, (_, lo, hi)) in enumerate(zip(offsets, marks, strict=True)):
            concept[i, : len(spans)] = (spans[:, 0] >= lo) & (spans[:, 1] <= hi) & (spans[:, 1] > spans[:, 0])
        return {**out, "concept": concept}

    def logits(self, rows: Sequence[tuple[str, int, int]], batch_size: int = 64, sections=None) -> dict[str, Any]:
        """Uncalibrated logits per attribute, ``(n_rows, n_classes)`` arrays, rows in input order."""
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        out = {a: np.zeros((len(rows), len(c)), dtype=np.float32) for a, c in CLASSES.items()}
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            batch = self.encode([rows[i] for i in idx], [sections[i] for i in idx] if sections else None)
            for a, v in zip(CLASSES, run_graph(self.session, self.weights, batch, list(CLASSES)), strict=True):
                out[a][idx] = v
        return out

    def predict_proba(self, rows: Sequence[tuple[str, int, int]], batch_size: int = 64, sections=None) -> list[dict]:
        """One ``{attribute: {class: probability}}`` per row (temperature-scaled softmax)."""
        return calibrated(self.logits(rows, batch_size, sections), self.temperatures)
