"""Training of :class:`TransformerAssertionModel` on rows with gold negation / temporality / experiencer.

The frozen lower layers run once per row (their states are cached), so an epoch costs about one
forward pass through the fine-tuned top layers and their backward pass. With validation rows the
best epoch is kept (by negated + historical + hypothetical F1) and each head's temperature is
fitted on them; without, ``epochs`` and ``temperatures`` are taken as given (the final fit on every
row reuses what a validation run chose).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.models.assertion_transformer import CLASSES, TransformerAssertionModel, fit_temperature, softmax

SELECTION_CLASSES = (("negation", "negated"), ("temporality", "historical"), ("temporality", "hypothetical"))


@dataclass
class TrainConfig:
    """Hyper-parameters (defaults chosen on the development reports, see RESULTS.md)."""

    top_layers: int = 2
    epochs: int = 8
    batch_size: int = 16
    lr_layers: float = 1e-4
    lr_heads: float = 1e-3
    warmup: float = 0.1
    seed: int = 0
    temperatures: dict[str, float] = field(default_factory=dict)


def class_f1(gold: Sequence[str], pred: Sequence[str], cls: str) -> float:
    tp = sum(g == cls and p == cls for g, p in zip(gold, pred, strict=True))
    wrong = sum((g == cls) != (p == cls) for g, p in zip(gold, pred, strict=True))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + wrong)


def selection_score(rows: Sequence[Mapping[str, Any]], probs: Mapping[str, np.ndarray]) -> float:
    """negated + historical + hypothetical F1 of the arg-max predictions."""
    total = 0.0
    for attr, cls in SELECTION_CLASSES:
        pred = [CLASSES[attr][j] for j in probs[attr].argmax(1)]
        total += class_f1([r[attr] for r in rows], pred, cls)
    return total


def _targets(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    out = {}
    for attr, classes in CLASSES.items():
        unknown = {r[attr] for r in rows} - set(classes)
        if unknown:
            raise ValueError(f"unknown {attr} value(s) {sorted(unknown)}; expected {list(classes)}")
        out[attr] = [classes.index(r[attr]) for r in rows]
    return out


def _class_weights(y: Sequence[int], k: int) -> list[float]:
    counts = np.bincount(np.asarray(y), minlength=k).astype(float)
    w = np.sqrt(len(y) / (k * np.clip(counts, 1, None)))
    return [float(v) for v in w]


def _cached_batches(model: TransformerAssertionModel, rows, batch_size: int, progress: bool) -> list[tuple]:
    """(frozen states, mask, concept mask, row indices) per length-sorted batch."""
    from tqdm import tqdm

    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["text"]))
    triples = [(r["text"], r["start"], r["end"]) for r in rows]
    sections = [r.get("section") for r in rows]
    out = []
    starts = range(0, len(order), batch_size)
    for b in tqdm(starts, desc="encoding (frozen layers)", unit="batch", disable=not progress):
        idx = order[b : b + batch_size]
        batch = model.encode([triples[i] for i in idx], [sections[i] for i in idx])
        out.append((model.frozen_states(batch), batch["enc"]["attention_mask"], batch["concept"], idx))
    return out


def _eval_logits(model: TransformerAssertionModel, batches, n: int) -> dict[str, np.ndarray]:
    import torch

    model.top.train(False)
    out = {a: np.zeros((n, len(c)), dtype=np.float32) for a, c in CLASSES.items()}
    with torch.no_grad():
        for h, mask, concept, idx in batches:
            for a, v in model.top(h, mask, concept).items():
                out[a][idx] = v.numpy()
    return out


def train_transformer(
    rows: Sequence[Mapping[str, Any]],
    *,
    config: TrainConfig | None = None,
    val_rows: Sequence[Mapping[str, Any]] | None = None,
    base_dir: Path | None = None,
    progress: bool = True,
    on_epoch: Callable[[int, dict[str, np.ndarray]], None] | None = None,
) -> tuple[TransformerAssertionModel, dict[str, Any]]:
    """Fit a model on ``rows``; returns it and a history (per-epoch validation score, chosen epoch).

    ``on_epoch(epoch, logits)`` receives the validation logits after each epoch (for cross-validation).
    """
    import torch
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    cfg = config or TrainConfig()
    if not rows:
        raise ValueError("no training rows")
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = TransformerAssertionModel.fresh(base_dir, cfg.top_layers, cfg.seed)
    y = {a: torch.tensor(v) for a, v in _targets(rows).items()}
    losses = {
        a: torch.nn.CrossEntropyLoss(weight=torch.tensor(_class_weights(y[a].tolist(), len(c))))
        for a, c in CLASSES.items()
    }
    train_batches = _cached_batches(model, rows, cfg.batch_size, progress)
    val_batches = _cached_batches(model, val_rows, 64, progress) if val_rows else []
    head_params = list(model.top.heads.parameters())
    layer_params = list(model.top.layers.parameters())
    opt = torch.optim.AdamW(
        [{"params": layer_params, "lr": cfg.lr_layers}, {"params": head_params, "lr": cfg.lr_heads}]
    )
    steps = cfg.epochs * len(train_batches)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup * steps), steps)
    history: dict[str, Any] = {"val_score": [], "epochs": cfg.epochs}
    best_state, best_score = None, -1.0
    bar = tqdm(total=steps, desc="training assertion heads", unit="step", disable=not progress)
    for _epoch in range(cfg.epochs):
        model.top.train(True)
        random.shuffle(train_batches)
        for h, mask, concept, idx in train_batches:
            out = model.top(h, mask, concept)
            loss = sum(losses[a](out[a], y[a][idx]) for a in CLASSES)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
        if val_rows:
            logits = _eval_logits(model, val_batches, len(val_rows))
            if on_epoch is not None:
                on_epoch(_epoch + 1, logits)
            score = selection_score(val_rows, {a: softmax(v) for a, v in logits.items()})
            history["val_score"].append(round(score, 4))
            if score > best_score:
                best_score = score
                best_state = {k: v.detach().clone() for k, v in model.top.state_dict().items()}
                history["best_epoch"] = _epoch + 1
    bar.close()
    if val_rows and best_state is not None:
        model.top.load_state_dict(best_state)
        logits = _eval_logits(model, val_batches, len(val_rows))
        gold = _targets(val_rows)
        model.temperatures = {a: fit_temperature(logits[a], gold[a]) for a in CLASSES}
    else:
        model.temperatures = {a: float(cfg.temperatures.get(a, 1.0)) for a in CLASSES}
    history["temperatures"] = model.temperatures
    model.top.train(False)
    return model, history
