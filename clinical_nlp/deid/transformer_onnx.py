"""The MiniLM PHI tagger run by ONNX Runtime: no torch or transformers when ``deid --detector ensemble`` runs.

The tagger's whole computation over a note's windows (embeddings, the frozen lower layers, the
fine-tuned top and the token head) is an ONNX graph whose weights are named inputs
(:mod:`clinical_nlp.models.onnx_graph`), fed from the packaged MiniLM and the tagger's
``weights.safetensors``. The windows come from the checkpoint's ``tokenizer.json`` through Hugging
Face ``tokenizers`` with the same truncation and stride as the torch tagger's fast tokenizer, so
both read the same pieces; a word's logits are then combined exactly as in
:meth:`clinical_nlp.deid.transformer.TransformerPHITagger.word_logits`.

``TransformerPHITagger.save`` exports the graph; :func:`load_phi_tagger` uses it when ONNX Runtime
is installed (else torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.deid.model import MODEL_LABELS
from clinical_nlp.deid.transformer import (
    STRIDE,
    WINDOW,
    TransformerPHITagger,
    Windows,
    combine_window_logits,
    word_proba,
)
from clinical_nlp.errors import ConfigError
from clinical_nlp.models.onnx_graph import (
    export,
    frozen_base,
    onnx_available,
    open_graph,
    pad_encodings,
    read_meta,
    run_graph,
    word_piece_tokenizer,
)
from clinical_nlp.models.top_layers import WEIGHTS_FILE, file_sha

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "logits"


def export_phi_graph(tagger: TransformerPHITagger, path: Path | str) -> str:
    """Write ``tagger``'s graph (it must have been saved to ``path``); returns the graph's hash."""
    full, n_base = frozen_base(tagger.base_dir, tagger.top_layers, tagger.top, lambda top, h, mask: top(h, mask))
    win = tagger.windows("Seen by Dr. Lopez at Sacred Heart on 3/4. " * 20)
    args = tuple(win.enc[k] for k in INPUTS)
    axes = {k: {0: "windows", 1: "pieces"} for k in INPUTS} | {OUTPUT: {0: "windows", 1: "pieces"}}
    return export(full, args, Path(path), list(INPUTS), [OUTPUT], axes, n_base)


@dataclass(eq=False)  # hashed by identity, for the logits cache
class OnnxPHITagger:
    """Same ``proba``, ``word_logits``, ``labels``, ``name`` and ``meta`` as :class:`TransformerPHITagger`."""

    session: Any
    tokenizer: Any
    meta: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    labels: tuple[str, ...] = MODEL_LABELS
    weights: dict[str, tuple[np.ndarray, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path | str, base_dir: Path | None = None) -> OnnxPHITagger:
        from clinical_nlp.models.embeddings import default_transformer_dir

        p = Path(path)
        base = Path(base_dir or default_transformer_dir())
        meta = read_meta(p, "MiniLM PHI tagger")
        if tuple(meta.get("labels", ())) != MODEL_LABELS:
            raise ConfigError(f"{p}: labels {meta.get('labels')} differ from the tagger's {list(MODEL_LABELS)}")
        session, kept, _ = open_graph(p, meta, base)
        tokenizer = word_piece_tokenizer(base, WINDOW, STRIDE)
        return cls(session, tokenizer, meta, file_sha(p / WEIGHTS_FILE)[:12], MODEL_LABELS, kept)

    @property
    def name(self) -> str:
        return f"{self.meta.get('name', 'deid-minilm')}@{self.meta.get('version', '0')}+{self.digest}"

    def windows(self, text: str) -> Windows:
        """The note's overlapping windows, as the torch tagger's fast tokenizer cuts them (padded to the longest)."""
        first = self.tokenizer.encode(text)
        enc, spans = pad_encodings([first, *first.overflowing])
        offsets = np.zeros((*enc["input_ids"].shape, 2), dtype=np.int64)
        for i, off in enumerate(spans):
            offsets[i, : len(off)] = off
        return Windows(enc, offsets)

    def word_logits(self, text: str, toks: Sequence[tuple[int, int]]) -> np.ndarray:
        """``(len(toks), n_labels)`` logits: each token's first piece, averaged over its windows."""
        if not toks or not text.strip():
            return np.zeros((len(toks), len(self.labels)), dtype=np.float32)
        win = self.windows(text)
        (logits,) = run_graph(self.session, self.weights, win.enc, [OUTPUT])
        return combine_window_logits(win, logits, toks, self.labels)

    def proba(self, text: str, toks: Sequence[tuple[int, int]], only: Sequence[int] | None = None) -> np.ndarray:
        return word_proba(self, text, toks, only)


def load_phi_tagger(path: Path, base_dir: Path | None = None) -> Any:
    """The saved MiniLM PHI tagger in ``path``: run by ONNX Runtime when it has a graph, else by torch."""
    if onnx_available(path):
        return OnnxPHITagger.load(path, base_dir)
    return TransformerPHITagger.load(path, base_dir)
