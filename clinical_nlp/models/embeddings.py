"""Note embeddings for diversity sampling: mean-pooled sentence vectors from the packaged MiniLM.

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

import numpy as np

from clinical_nlp.types import Note


@lru_cache(maxsize=2)
def _load(model_dir: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True)
    model.train(False)
    return tok, model


def embed(notes: Sequence[Note | str], *, model_dir: Path | str | None = None, batch_size: int = 32,
          max_length: int = 256, normalize: bool = True) -> np.ndarray:
    """``(n_notes, dim)`` float32 embeddings: attention-masked mean of the last hidden states.

    Args:
        notes: notes (or plain strings); empty texts give a zero vector.
        model_dir: local Hugging Face directory (default: packaged all-MiniLM-L6-v2).
        batch_size: notes per forward pass.
        max_length: word pieces kept per note (the head of long notes).
        normalize: L2-normalise rows (cosine similarity = dot product).
    """
    import torch

    from clinical_nlp.models.entities import default_transformer_dir

    tok, model = _load(str(model_dir or default_transformer_dir()))
    texts = [n.text if isinstance(n, Note) else str(n) for n in notes]
    dim = int(model.config.hidden_size)
    out = np.zeros((len(texts), dim), dtype=np.float32)
    idx = [i for i, t in enumerate(texts) if t.strip()]
    with torch.no_grad():
        for b in range(0, len(idx), batch_size):
            chunk = idx[b : b + batch_size]
            enc = tok([texts[i] for i in chunk], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            if normalize:
                vec = torch.nn.functional.normalize(vec, dim=-1)
            out[chunk] = vec.numpy()
    return out
