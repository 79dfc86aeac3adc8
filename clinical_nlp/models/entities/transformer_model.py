"""The transformer kind: a Hugging Face token classifier (packaged MiniLM by default), BIO tags on word pieces."""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.errors import ConfigError, ModelError
from clinical_nlp.models.embeddings import default_transformer_dir, quiet_transformers
from clinical_nlp.models.entities.base import EntityModel, read_model_meta
from clinical_nlp.models.entities.config import MODEL_FILE, TrainConfig, bio_tags
from clinical_nlp.models.entities.evaluate import evaluate_entity_model
from clinical_nlp.models.entities.spans import PolicyStats, training_spans
from clinical_nlp.models.entities.training import BestEpoch, best_epoch, end_of_epoch, progress_bar
from clinical_nlp.types import AnnotatedNote, Note


class TransformerEntityModel(EntityModel):
    """Hugging Face token classifier (packaged MiniLM by default), BIO tags on word pieces."""

    kind = "transformer"

    def __init__(self, hf_model, tokenizer, labels, meta, metrics=None, path=None):
        super().__init__(labels, meta, metrics, path)
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.max_length = int(meta.get("config", {}).get("max_length", 256))
        self.stride = int(meta.get("config", {}).get("stride", 64))

    def _encode(self, text: str):
        return self.tokenizer(
            text,
            return_offsets_mapping=True,
            truncation=True,
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            add_special_tokens=True,
        )

    def _windows(self, note: Note):
        """(offsets of the note's word pieces, list of (input_ids, piece index per position))."""
        enc = self._encode(note.text)
        offsets: list[tuple[int, int]] = []
        index: dict[tuple[int, int], int] = {}
        windows = []
        for w in range(len(enc["input_ids"])):
            ids = enc["input_ids"][w]
            offs = enc["offset_mapping"][w]
            pos = []
            for a, b in offs:
                if b <= a:
                    pos.append(-1)
                    continue
                key = (a, b)
                if key not in index:
                    index[key] = len(offsets)
                    offsets.append(key)
                pos.append(index[key])
            windows.append((ids, pos))
        order = sorted(range(len(offsets)), key=lambda k: offsets[k])
        remap = {old: new for new, old in enumerate(order)}
        offsets = [offsets[k] for k in order]
        windows = [(ids, [remap[p] if p >= 0 else -1 for p in pos]) for ids, pos in windows]
        return offsets, windows

    def token_offsets(self, notes):
        return [self._windows(n)[0] for n in notes]

    def _probabilities(self, notes, stochastic):
        import torch

        self.hf_model.train(stochastic)
        out = []
        with torch.no_grad():
            for note in notes:
                offsets, windows = self._windows(note)
                acc = np.zeros((len(offsets), len(self.tags)))
                cnt = np.zeros(len(offsets))
                for b in range(0, len(windows), 16):
                    chunk = windows[b : b + 16]
                    width = max(len(ids) for ids, _ in chunk)
                    ids = torch.zeros((len(chunk), width), dtype=torch.long)
                    mask = torch.zeros((len(chunk), width), dtype=torch.long)
                    for r, (wid, _) in enumerate(chunk):
                        ids[r, : len(wid)] = torch.tensor(wid)
                        mask[r, : len(wid)] = 1
                    logits = self.hf_model(input_ids=ids, attention_mask=mask).logits
                    probs = torch.softmax(logits.float(), dim=-1).numpy()
                    for r, (_, pos) in enumerate(chunk):
                        for t, p in enumerate(pos):
                            if p >= 0:
                                acc[p] += probs[r, t]
                                cnt[p] += 1
                acc /= np.clip(cnt, 1, None)[:, None]
                out.append(acc)
        self.hf_model.train(False)
        return out

    def _save_weights(self, path):
        self.hf_model.save_pretrained(path / "transformer")
        self.tokenizer.save_pretrained(path / "transformer")

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any], metrics: dict[str, Any]) -> TransformerEntityModel:
        """The model saved under ``path`` (``meta``/``metrics``: its ``model.json``/``metrics.json``)."""
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        quiet_transformers()
        try:
            tok = AutoTokenizer.from_pretrained(str(path / "transformer"), local_files_only=True)
            hf = AutoModelForTokenClassification.from_pretrained(str(path / "transformer"), local_files_only=True)
        except OSError as exc:
            raise ModelError(f"{path}: cannot load transformer weights: {exc}") from None
        hf.train(False)
        return cls(hf, tok, meta.get("labels") or [], meta, metrics, path)


def _transformer_windows(tokenizer, doc: AnnotatedNote, labels, tag_index, config, stats):
    spans = training_spans(doc, labels, stats)
    enc = tokenizer(
        doc.text,
        return_offsets_mapping=True,
        truncation=True,
        max_length=config.max_length,
        stride=config.stride,
        return_overflowing_tokens=True,
    )
    out = []
    for w in range(len(enc["input_ids"])):
        tags = []
        for a, b in enc["offset_mapping"][w]:
            if b <= a:
                tags.append(-100)
                continue
            tag = "O"
            for s, e, label in spans:
                if a < e and s < b:
                    tag = f"B-{label}" if a <= s else f"I-{label}"
                    break
            tags.append(tag_index[tag])
        out.append((enc["input_ids"][w], tags))
    return out


def train_transformer(train, dev, config: TrainConfig, meta, progress: bool):
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        get_linear_schedule_with_warmup,
    )

    quiet_transformers()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    tags = bio_tags(config.labels)
    tag_index = {t: i for i, t in enumerate(tags)}
    src = config.base_model or default_transformer_dir()
    if (Path(src) / MODEL_FILE).exists():  # warm start from one of our model directories
        base_meta = read_model_meta(src)
        if base_meta.get("kind") != TransformerEntityModel.kind:
            raise ConfigError(f"{src}: base model is {base_meta.get('kind')!r}, not a transformer model")
        base = TransformerEntityModel.load(Path(src), base_meta, {})
        if base.tags != tags:
            raise ConfigError(f"{src}: base model labels {base.labels} differ from {config.labels}")
        hf, tokenizer = base.hf_model, base.tokenizer
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
            hf = AutoModelForTokenClassification.from_pretrained(
                str(src),
                local_files_only=True,
                num_labels=len(tags),
                id2label=dict(enumerate(tags)),
                label2id=tag_index,
                hidden_dropout_prob=config.dropout,
                attention_probs_dropout_prob=0.1,
            )
        except OSError as exc:
            raise ModelError(f"{src}: cannot load a Hugging Face model: {exc}") from None
    stats = PolicyStats()
    windows = [w for d in train for w in _transformer_windows(tokenizer, d, config.labels, tag_index, config, stats)]
    lr = config.learning_rate or 5e-5
    opt = torch.optim.AdamW(hf.parameters(), lr=lr, weight_decay=0.01)
    n_batches = (len(windows) + config.batch_size - 1) // config.batch_size
    total = config.epochs * n_batches if not config.max_steps else min(config.max_steps, config.epochs * n_batches)
    warm = max(1, total // 10)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=warm, num_training_steps=max(total, warm + 1))
    collate = DataCollatorForTokenClassification(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")
    model = TransformerEntityModel(hf, tokenizer, config.labels, meta)
    history: list[dict[str, Any]] = []
    stopper = BestEpoch(config.patience)
    steps = 0
    bar = progress_bar(total, "train entities (transformer)", progress)
    try:
        for epoch in range(config.epochs):
            hf.train(True)
            rng.shuffle(windows)
            # length-bucketed batches: less padding
            order = sorted(range(len(windows)), key=lambda k: len(windows[k][0]) + rng.random())
            batches = [order[b : b + config.batch_size] for b in range(0, len(order), config.batch_size)]
            rng.shuffle(batches)
            loss_sum = 0.0
            for bidx in batches:
                batch = collate([{"input_ids": windows[k][0], "labels": windows[k][1]} for k in bidx])
                loss = hf(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
                ).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
                opt.step()
                sched.step()
                opt.zero_grad()
                loss_sum += loss.detach().item()
                steps += 1
                bar.update(1)
                if config.max_steps and steps >= config.max_steps:
                    break
            hf.train(False)
            record: dict[str, Any] = {"epoch": epoch + 1, "loss": round(loss_sum / max(1, len(batches)), 4)}
            if dev:
                f1 = evaluate_entity_model(model, dev)["strict"]["micro"]["f1"]
                record["dev_strict_f1"] = round(f1, 4)
                bar.set_postfix(f1=f"{f1:.3f}")
                stopper.update(f1, lambda: {k: v.detach().clone() for k, v in hf.state_dict().items()})
            if end_of_epoch(record, history, config, steps, stopper, bool(dev)):
                break
    finally:
        bar.close()
    if stopper.best is not None:
        hf.load_state_dict(stopper.best[1])
    hf.train(False)
    info = {
        "history": history,
        "steps": steps,
        "span_policy": asdict(stats),
        "n_windows": len(windows),
        "base": str(src),
        "best_epoch": best_epoch(history, bool(dev)),
    }
    return TransformerEntityModel(hf, tokenizer, config.labels, meta), info
