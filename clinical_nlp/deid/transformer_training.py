"""Fine-tuning of the MiniLM PHI tagger on notes with gold PHI spans, with surrogate augmentation.

The training notes plus ``copies`` surrogate copies of each note with PHI (``augment.py``: every
gold span replaced by a random realistic value of its type) are cut into windows; the frozen lower
layers run once per window (their states are cached), so an epoch costs about one forward and
backward pass through the fine-tuned top layers. Each word's first piece carries its label
(``token_labels``); other pieces and special tokens carry none. With ``label_weights``, labels are
weighted by the square root of their inverse frequency, so the rare identifiers are not drowned by ``O``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.deid.augment import augment
from clinical_nlp.deid.model import MODEL_LABELS, token_labels, tokenize
from clinical_nlp.deid.transformer import TransformerPHITagger, Windows

IGNORE = -100


@dataclass
class PHITrainConfig:
    """Hyper-parameters (defaults chosen on the development patients, see RESULTS.md)."""

    top_layers: int = 2
    epochs: int = 3
    batch_size: int = 16
    lr_layers: float = 1e-4
    lr_head: float = 1e-3
    warmup: float = 0.1
    copies: int = 3
    label_weights: bool = True
    seed: int = 0


def piece_labels(win: Windows, text: str, spans: Sequence[dict]) -> np.ndarray:
    """``(n_windows, n_pieces)`` label indices: a word's first piece has its label, the rest ``IGNORE``."""
    toks = tokenize(text)
    labels = [MODEL_LABELS.index(lab) for lab in token_labels(text, toks, spans)]
    y = np.full(win.offsets.shape[:2], IGNORE, dtype=np.int64)
    for i, w, p in win.first_pieces(toks):
        y[w, p] = labels[i]
    return y


def _encoded(model: TransformerPHITagger, docs: Sequence[dict], progress: bool) -> list[tuple[Any, np.ndarray]]:
    """(frozen states, labels) per window, cut to the window's real length."""
    from tqdm import tqdm

    out: list[tuple[Any, np.ndarray]] = []
    for doc in tqdm(docs, desc="encoding notes (frozen layers)", unit="note", disable=not progress):
        if not doc["text"].strip():
            continue
        win = model.windows(doc["text"])
        y = piece_labels(win, doc["text"], doc.get("spans") or [])
        h = model.frozen_states(win.enc).half()
        lengths = win.enc["attention_mask"].sum(1).tolist()
        out.extend((h[w, :n].clone(), y[w, :n]) for w, n in enumerate(lengths))
    return out


def _batches(items: list[tuple[Any, np.ndarray]], size: int) -> list[tuple[Any, Any, Any]]:
    """Length-sorted, padded batches of (states, mask, labels)."""
    import torch

    order = sorted(range(len(items)), key=lambda i: len(items[i][1]))
    out = []
    for b in range(0, len(order), size):
        idx = order[b : b + size]
        n = max(len(items[i][1]) for i in idx)
        hidden = items[idx[0]][0].shape[-1]
        h = torch.zeros((len(idx), n, hidden), dtype=torch.float32)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        y = torch.full((len(idx), n), IGNORE, dtype=torch.long)
        for r, i in enumerate(idx):
            k = len(items[i][1])
            h[r, :k] = items[i][0].float()
            mask[r, :k] = 1
            y[r, :k] = torch.from_numpy(items[i][1])
        out.append((h, mask, y))
    return out


def _label_weights(batches: Sequence[tuple[Any, Any, Any]]) -> list[float]:
    ys = np.concatenate([b[2].numpy().ravel() for b in batches])
    ys = ys[ys != IGNORE]
    counts = np.bincount(ys, minlength=len(MODEL_LABELS)).astype(float)
    w = np.sqrt(len(ys) / (len(MODEL_LABELS) * np.clip(counts, 1, None)))
    return [float(v) for v in w]


def train_phi_transformer(
    docs: Iterable[dict],
    *,
    config: PHITrainConfig | None = None,
    base_dir: Path | None = None,
    progress: bool = True,
) -> TransformerPHITagger:
    """Fit a MiniLM PHI tagger on notes with ``text`` and gold ``spans`` (``start``, ``end``, ``label``)."""
    import torch
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    cfg = config or PHITrainConfig()
    notes = list(docs)
    if not notes:
        raise ValueError("no training notes")
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = TransformerPHITagger.fresh(base_dir, cfg.top_layers, cfg.seed)
    training = notes + (augment(notes, copies=cfg.copies, seed=cfg.seed) if cfg.copies else [])
    batches = _batches(_encoded(model, training, progress), cfg.batch_size)
    weights = torch.tensor(_label_weights(batches)) if cfg.label_weights else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights, ignore_index=IGNORE)
    opt = torch.optim.AdamW(
        [
            {"params": list(model.top.layers.parameters()), "lr": cfg.lr_layers},
            {"params": list(model.top.head.parameters()), "lr": cfg.lr_head},
        ]
    )
    steps = cfg.epochs * len(batches)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup * steps), steps)
    bar = tqdm(total=steps, desc="training the MiniLM PHI tagger", unit="step", disable=not progress)
    for _ in range(cfg.epochs):
        model.top.train(True)
        random.shuffle(batches)
        for h, mask, y in batches:
            logits = model.top(h, mask)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    model.top.train(False)
    model.meta = {
        "name": "deid-minilm",
        "version": "1",
        "config": asdict(cfg),
        "n_notes": len(notes),
        "n_windows": sum(len(b[2]) for b in batches),
    }
    return model
