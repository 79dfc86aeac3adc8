"""The relation model's MiniLM pair scorer run by ONNX Runtime: no torch or transformers at prediction time.

The scorer's cost is its encoder: the packaged MiniLM's frozen lower layers and fine-tuned top read
every line that holds a candidate pair (about 100,000 word pieces for 1,000 Chia criteria). That
part is exported as an ONNX graph (:mod:`clinical_nlp.models.onnx_graph`: weights as named inputs,
fed from the checkpoint and the scorer's ``weights.safetensors``); the graph returns each piece's
final state. What follows is small and runs in numpy: the mean state of each span's pieces, the
label and distance embeddings, and the pair MLP (exact GELU), as in
:class:`clinical_nlp.models.relations_minilm.MiniLMPairScorer`. The frozen states are rounded to
float16 inside the graph, as the torch scorer caches them, so both see the same numbers.

``RelationModel.save`` exports the graph whenever the scorer is saved;
``load_relation_model`` uses it when ONNX Runtime is installed (else torch).

Example:
    >>> scorer = OnnxPairScorer.load(model_dir / "minilm")  # doctest: +SKIP
    >>> scorer.pair_probs(rows, cands)[0].shape  # doctest: +SKIP
    (12, 14)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.models.assertion_transformer import softmax
from clinical_nlp.models.onnx_graph import (
    GRAPH_FILE,
    export,
    frozen_base,
    onnx_available,
    open_graph,
    pad_encodings,
    read_meta,
    run_graph,
    word_piece_tokenizer,
)
from clinical_nlp.models.relations_minilm import MAX_PIECES, Pair, Row, _lines, pair_inputs, scatter
from clinical_nlp.models.top_layers import META_FILE, WEIGHTS_FILE, file_sha

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "states"


def export_pair_graph(scorer: Any, path: Path | str) -> str:
    """Write the encoder graph of ``scorer`` (a :class:`MiniLMPairScorer` saved in ``path``); returns its hash."""
    from clinical_nlp.models.embeddings import load_minilm
    from clinical_nlp.models.top_layers import run_layers

    tok, _ = load_minilm(str(scorer.base_dir))
    full, n_base = frozen_base(  # the torch scorer caches the frozen states in float16: so does the graph
        scorer.base_dir,
        scorer.top_layers,
        scorer.head,
        lambda top, h, mask: run_layers(top.layers, h.half().float(), mask),
    )
    enc = tok(["Age > 18 years", "HbA1c 7-10% within 3 months"], padding=True, return_tensors="pt")
    args = tuple(enc[k] for k in INPUTS)
    axes = {k: {0: "lines", 1: "pieces"} for k in INPUTS} | {OUTPUT: {0: "lines", 1: "pieces"}}
    return export(full, args, Path(path), list(INPUTS), [OUTPUT], axes, n_base)


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


@dataclass
class OnnxPairScorer:
    """Same ``pair_probs``, ``classes``, ``labels`` and ``meta`` as :class:`MiniLMPairScorer`."""

    session: Any
    tokenizer: Any
    labels: list[str]
    classes: list[str]
    head: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    weights: dict[str, tuple[np.ndarray, Any]] = field(default_factory=dict, repr=False)
    source: Path | None = None

    @classmethod
    def load(cls, path: Path | str, base_dir: Path | None = None) -> OnnxPairScorer:
        from clinical_nlp.models.embeddings import default_transformer_dir

        p = Path(path)
        base = Path(base_dir or default_transformer_dir())
        meta = read_meta(p, "relation pair scorer")
        session, kept, top = open_graph(p, meta, base)
        head = {k: np.asarray(v, dtype=np.float32) for k, v in top.items() if not k.startswith("layers.")}
        tokenizer = word_piece_tokenizer(base, MAX_PIECES)
        return cls(session, tokenizer, list(meta["labels"]), list(meta["classes"]), head, meta,
                   file_sha(p / WEIGHTS_FILE)[:12], kept, p)  # fmt: skip

    def save(self, path: Path | str) -> Path:
        """Copy the scorer's files (fine-tuned weights, meta, graph) to ``path``."""
        import shutil

        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        if self.source is not None and self.source.resolve() != p.resolve():
            for name in (WEIGHTS_FILE, META_FILE, GRAPH_FILE):
                shutil.copyfile(self.source / name, p / name)
        return p

    def _states(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Final states ``(lines, pieces, hidden)`` and each line's piece offsets."""
        arrays, offsets = pad_encodings(self.tokenizer.encode_batch(texts))
        (states,) = run_graph(self.session, self.weights, arrays, [OUTPUT])
        return states, offsets

    def _logits(self, lines: list[dict[str, Any]], cands: Sequence[Sequence[Pair]]) -> np.ndarray:
        states, offsets = self._states([x["text"] for x in lines])
        pooled, p = pair_inputs(lines, [states[k, : len(off)] for k, off in enumerate(offsets)], offsets, cands,
                                self.labels)  # fmt: skip
        table = np.stack(pooled)
        ha, hb = table[p.ia], table[p.ib]
        emb, demb = self.head["labels.weight"], self.head["dist.weight"]
        feats = np.concatenate(
            [ha, hb, ha * hb, emb[p.la], emb[p.lb], demb[p.dist], np.asarray(p.order, dtype=np.float32)[:, None]],
            axis=1,
        )
        hidden = _gelu(feats @ self.head["mlp.1.weight"].T + self.head["mlp.1.bias"])
        return hidden @ self.head["mlp.3.weight"].T + self.head["mlp.3.bias"]

    def pair_probs(self, rows: Sequence[Row], cands: Sequence[Sequence[Pair]], batch: int = 64) -> list[np.ndarray]:
        """Per row, the class probabilities of its candidates, ``(n_candidates, n_classes)``, in their order."""
        out = [np.zeros((len(c), len(self.classes))) for c in cands]
        lines = sorted(_lines(rows, cands), key=lambda x: len(x["text"]))  # similar lengths batched: little padding
        for b in range(0, len(lines), batch):
            chunk = lines[b : b + batch]
            scatter(chunk, softmax(self._logits(chunk, cands)), out)
        return out


def load_pair_scorer(path: Path, base_dir: Path | None = None) -> Any:
    """The saved pair scorer in ``path``: run by ONNX Runtime when it has a graph, else by torch."""
    if onnx_available(path):
        return OnnxPairScorer.load(path, base_dir)
    from clinical_nlp.models.relations_minilm import MiniLMPairScorer

    return MiniLMPairScorer.load(path, base_dir)
