"""MiniLM PHI token tagger, and the recall-oriented ensemble of it with the CRF.

The packaged all-MiniLM-L6-v2 (or any local BERT-style checkpoint) reads a note in windows of
``WINDOW`` word pieces overlapping by ``STRIDE``; its lower layers stay frozen, its top
``top_layers`` layers and a token-classification head over the tagger's labels (``MODEL_LABELS``)
are fine-tuned (``transformer_training.py``). A word's (:func:`~clinical_nlp.deid.model.tokenize`)
logits are those of its first word piece, averaged over the windows that see it. Only the
fine-tuned layers and the head are saved (fp16 safetensors); loading rebuilds the model from the
base checkpoint, checked by the hash of its weights file.

:class:`EnsembleTagger` has the CRF's ``proba`` interface, so the :class:`~clinical_nlp.deid.core.Detector`
uses it unchanged: a word takes the MiniLM's probabilities where the MiniLM is confident it is PHI
(P(O) below ``strong``) and more so than the CRF; elsewhere the CRF's.

Example:
    >>> tagger = EnsembleTagger(load_tagger(), TransformerPHITagger.load(DEFAULT_PHI_TRANSFORMER_DIR))  # doctest: +SKIP
    >>> Detector(tagger).detect("Seen by Dr. Lopez at Sacred Heart.")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clinical_nlp.deid.model import MODEL_LABELS, PHITagger
from clinical_nlp.errors import ConfigError
from clinical_nlp.models.assertion_transformer import softmax
from clinical_nlp.models.embeddings import default_transformer_dir, load_minilm
from clinical_nlp.models.top_layers import (
    META_FILE,  # noqa: F401  (re-exported)
    WEIGHTS_FILE,
    base_encoder,
    file_sha,
    read_top,
    run_layers,
    trainable_top,
    write_top,
)

if TYPE_CHECKING:
    from clinical_nlp.deid.core import Detector

DEFAULT_PHI_TRANSFORMER_DIR = Path(__file__).resolve().parent.parent / "resources" / "deid" / "transformer"
#: Word pieces per window (special tokens included) and the overlap between consecutive windows.
WINDOW = 128
STRIDE = 32
#: The MiniLM overrides the CRF on a word when its P(O) is below this (chosen on development patients).
DEFAULT_STRONG = 0.05
#: ... and only where the CRF's P(O) is below this (1: anywhere; chosen on development patients).
DEFAULT_CRF_BELOW = 0.99999


def _top_module(encoder: Any, top_layers: int, n_labels: int) -> Any:
    """A trainable copy of the encoder's top layers plus a token-classification head."""
    import torch

    hidden = int(encoder.config.hidden_size)

    class Top(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = trainable_top(encoder, top_layers)
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(hidden, n_labels)

        def forward(self, h: Any, mask: Any) -> Any:
            return self.head(self.dropout(run_layers(self.layers, h, mask)))

    return Top()


@dataclass
class Windows:
    """One note's word-piece windows: model inputs, piece offsets into the note, piece masks."""

    enc: dict[str, Any]
    offsets: np.ndarray  # (n_windows, n_pieces, 2) character offsets; (0, 0) for special/padding

    def first_pieces(self, toks: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """``(token index, window, piece)`` for the first piece of every token in every window that sees it."""
        starts = np.array([a for a, _ in toks])
        ends = np.array([b for _, b in toks])
        out: list[tuple[int, int, int]] = []
        for w in range(self.offsets.shape[0]):
            off = self.offsets[w]
            real = np.nonzero(off[:, 1] > off[:, 0])[0]
            if not len(real):
                continue
            p_start = off[real, 0]
            at = np.searchsorted(p_start, starts, side="left")
            ok = at < len(real)
            hit = np.zeros(len(toks), dtype=bool)
            hit[ok] = p_start[at[ok]] < ends[ok]
            if w > 0:  # an overflow window may begin inside a word: that word is read by the previous one
                hit &= ~((at == 0) & (p_start[np.minimum(at, len(real) - 1)] > starts))
            out.extend((int(i), w, int(real[at[i]])) for i in np.nonzero(hit)[0])
        return out


def combine_window_logits(
    win: Windows, logits: np.ndarray, toks: Sequence[tuple[int, int]], labels: Sequence[str]
) -> np.ndarray:
    """``(len(toks), n_labels)``: each token's first-piece logits (``logits``: windows × pieces × labels),
    averaged over the windows that see it."""
    out = np.zeros((len(toks), len(labels)), dtype=np.float32)
    seen = np.zeros(len(toks), dtype=np.float32)
    for i, w, p in win.first_pieces(toks):
        out[i] += logits[w, p]
        seen[i] += 1
    out[seen > 0] /= seen[seen > 0, None]
    out[seen == 0, list(labels).index("O")] = 20.0  # a token no piece covers (never expected) is not PHI
    return out


@dataclass(eq=False)  # hashed by identity, for the logits cache
class TransformerPHITagger:
    """Frozen MiniLM base + fine-tuned top layers and a PHI head; ``proba`` like the CRF's."""

    base_dir: Path
    top_layers: int
    top: Any
    meta: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    labels: tuple[str, ...] = MODEL_LABELS

    # ------------------------------------------------------------------ build / io
    @classmethod
    def fresh(cls, base_dir: Path | None = None, top_layers: int = 2, seed: int = 0) -> TransformerPHITagger:
        base, encoder = base_encoder(base_dir, top_layers, seed)
        return cls(base, top_layers, _top_module(encoder, top_layers, len(MODEL_LABELS)))

    @classmethod
    def load(cls, path: Path | str, base_dir: Path | None = None) -> TransformerPHITagger:
        p = Path(path)
        base = Path(base_dir or default_transformer_dir())
        meta, state = read_top(p, "MiniLM PHI tagger", base)
        if tuple(meta.get("labels", ())) != MODEL_LABELS:
            raise ConfigError(f"{p}: labels {meta.get('labels')} differ from the tagger's {list(MODEL_LABELS)}")
        model = cls.fresh(base, int(meta["top_layers"]))
        model.top.load_state_dict(state)
        model.top.train(False)
        model.meta = meta
        model.digest = file_sha(p / WEIGHTS_FILE)[:12]
        return model

    def save(self, path: Path | str) -> Path:
        p = Path(path)
        meta = {**self.meta, "top_layers": self.top_layers, "labels": list(MODEL_LABELS), "window": WINDOW}
        self.digest = write_top(self.top, p, {**meta, "stride": STRIDE}, self.base_dir)
        from clinical_nlp.deid.transformer_onnx import export_phi_graph

        export_phi_graph(self, p)  # the same tagger for ONNX Runtime (deid/transformer_onnx.py)
        return p

    # ------------------------------------------------------------------ encode
    def windows(self, text: str) -> Windows:
        """The note's overlapping word-piece windows."""
        tok, _ = load_minilm(str(self.base_dir))
        enc = tok(
            text,
            truncation=True,
            max_length=WINDOW,
            stride=STRIDE,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=True,
            return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping").numpy()
        enc.pop("overflow_to_sample_mapping", None)
        return Windows(dict(enc), offsets)

    def frozen_states(self, enc: dict[str, Any]) -> Any:
        """Hidden states entering the fine-tuned layers: embeddings and the frozen layers (no gradient)."""
        import torch

        _, encoder = load_minilm(str(self.base_dir))
        with torch.no_grad():
            h = encoder.embeddings(input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids"))
            frozen = encoder.encoder.layer[: len(encoder.encoder.layer) - self.top_layers]
            return run_layers(frozen, h, enc["attention_mask"])

    # ------------------------------------------------------------------ predict
    def word_logits(self, text: str, toks: Sequence[tuple[int, int]]) -> np.ndarray:
        """``(len(toks), n_labels)`` logits: each token's first piece, averaged over its windows."""
        import torch

        if not toks or not text.strip():
            return np.zeros((len(toks), len(self.labels)), dtype=np.float32)
        win = self.windows(text)
        self.top.train(False)
        with torch.no_grad():
            logits = self.top(self.frozen_states(win.enc), win.enc["attention_mask"]).numpy()
        return combine_window_logits(win, logits, toks, self.labels)

    def proba(self, text: str, toks: Sequence[tuple[int, int]], only: Sequence[int] | None = None) -> np.ndarray:
        return word_proba(self, text, toks, only)

    @property
    def name(self) -> str:
        return f"{self.meta.get('name', 'deid-minilm')}@{self.meta.get('version', '0')}+{self.digest}"


def word_proba(model: Any, text: str, toks: Sequence[tuple[int, int]], only: Sequence[int] | None) -> np.ndarray:
    """``model``'s (either runtime's tagger) word probabilities, like the CRF's ``proba``; logits cached."""
    if not toks or (only is not None and not len(only)):
        return np.zeros((0, len(model.labels)))
    p = softmax(_cached_logits(model, text, tuple(toks)))
    return p if only is None else p[list(only)]


@lru_cache(maxsize=2048)
def _cached_logits(model: TransformerPHITagger, text: str, toks: tuple[tuple[int, int], ...]) -> np.ndarray:
    """A note's logits, kept for the detector's repeated calls on the same note (threshold grids)."""
    return model.word_logits(text, toks)


class EnsembleTagger:
    """CRF + MiniLM: a word is the MiniLM's where it says PHI with P(O) < ``strong`` and more surely than the CRF
    (and, with ``crf_below`` < 1, only where the CRF's own P(O) is under it)."""

    def __init__(
        self,
        crf: PHITagger,
        transformer: Any,
        strong: float = DEFAULT_STRONG,
        crf_below: float = DEFAULT_CRF_BELOW,
    ):
        if set(crf.labels) != set(transformer.labels):
            raise ConfigError(
                f"the CRF's labels {list(crf.labels)} differ from the MiniLM's {list(transformer.labels)}"
            )
        self.crf = crf
        self.transformer = transformer
        self.strong = strong
        self.crf_below = crf_below
        self.labels = tuple(crf.labels)
        self._order = [transformer.labels.index(lab) for lab in self.labels]

    def proba(self, text: str, toks: Sequence[tuple[int, int]], only: Sequence[int] | None = None) -> np.ndarray:
        p = np.array(self.crf.proba(text, toks, only), dtype=float)
        if not len(p) or self.strong <= 0.0:  # 0: the MiniLM can never override (the CRF alone)
            return p
        q = self.transformer.proba(text, toks, only)[:, self._order]
        o = self.labels.index("O")
        take = (q[:, o] < self.strong) & (q[:, o] < p[:, o])
        if self.crf_below < 1.0:
            take &= p[:, o] < self.crf_below
        p[take] = q[take]
        return p


DETECTORS = ("crf", "ensemble")
#: the detection threshold and review band the ensemble's ``strong`` and ``crf_below`` were chosen
#: with (eleventh session); the CRF's own defaults moved in the thirteenth, the ensemble's grid was not rerun
ENSEMBLE_THRESHOLD = 0.98
ENSEMBLE_REVIEW_BELOW = 0.99


def detector_for(kind: str = "crf", *, strong: float = DEFAULT_STRONG, minilm_dir: Path | None = None) -> Detector:
    """The detector ``clinical-nlp deid --detector KIND`` uses: the packaged CRF alone, or with the MiniLM."""
    from clinical_nlp.deid.core import Detector
    from clinical_nlp.deid.model import load_tagger

    if kind not in DETECTORS:
        raise ConfigError(f"unknown detector {kind!r}; expected one of {', '.join(DETECTORS)}")
    if kind == "crf":
        return Detector()
    if not 0.0 <= strong <= 1.0:
        raise ConfigError(f"strong must be between 0 and 1, got {strong}")
    from clinical_nlp.deid.transformer_onnx import load_phi_tagger

    minilm = load_phi_tagger(Path(minilm_dir or DEFAULT_PHI_TRANSFORMER_DIR))
    return Detector(
        EnsembleTagger(load_tagger(), minilm, strong, DEFAULT_CRF_BELOW),
        threshold=ENSEMBLE_THRESHOLD,
        review_below=ENSEMBLE_REVIEW_BELOW,
    )
