"""A MiniLM span-pair scorer for relations, blended with the linear relation model.

Each line of a note is read once by the packaged all-MiniLM-L6-v2 (or any local BERT-style
checkpoint): its lower layers stay frozen, its top ``top_layers`` are fine-tuned. A candidate pair
(the linear model's candidates: same line, label pair seen in training) is scored from both spans'
mean word-piece states, their product, label embeddings, a distance bucket and the order, through a
small MLP over the linear model's classes (``NONE`` included). Only the fine-tuned layers, the
embeddings and the MLP are saved (fp16, :mod:`clinical_nlp.models.top_layers`). The relation model
blends ``weight * scorer + (1 - weight) * linear`` probabilities before its decoding
(:class:`clinical_nlp.models.relations.RelationModel`); the weight is chosen on development data.

Example:
    >>> scorer = MiniLMPairScorer.load(path)  # doctest: +SKIP
    >>> scorer.pair_probs(rows, cands)[0].shape  # doctest: +SKIP
    (12, 14)
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.models.top_layers import base_encoder, file_sha, read_top, run_layers, trainable_top, write_top

Row = Any
Pair = tuple[dict, dict]
MAX_PIECES = 160
DIST_BUCKETS = 8


@dataclass(frozen=True)
class PairTrainConfig:
    """Fine-tuning settings (chosen on the Chia dev tune trials; RESULTS.md)."""

    top_layers: int = 6  # fourteenth session, tune trials: all-link F1 0.760 (2 layers), 0.769 (4), 0.777 (6)
    epochs: int = 5
    batch_lines: int = 16
    lr_layers: float = 1e-4
    lr_head: float = 1e-3
    seed: int = 0


def _lines(rows: Sequence[Row], cands: Sequence[Sequence[Pair]]) -> list[dict[str, Any]]:
    """One item per (row, line with candidates): the line's text, its offset and its pairs' indices."""
    out = []
    for r, (row, pairs) in enumerate(zip(rows, cands, strict=True)):
        text = str(row["text"])
        starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
        by_line: dict[int, list[int]] = {}
        for k, (a, b) in enumerate(pairs):
            by_line.setdefault(bisect.bisect_right(starts, min(a["start"], b["start"])) - 1, []).append(k)
        for li, ks in by_line.items():
            lo = starts[li]
            hi = text.find("\n", lo)
            out.append({"row": r, "text": text[lo : hi if hi >= 0 else len(text)], "lineoff": lo, "pairs": ks})
    return out


def _head(encoder: Any, top_layers: int, n_labels: int, n_classes: int) -> Any:
    import torch

    hidden = int(encoder.config.hidden_size)

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = trainable_top(encoder, top_layers)
            self.labels = torch.nn.Embedding(n_labels + 1, 32)  # the last row: a label unseen in training
            self.dist = torch.nn.Embedding(DIST_BUCKETS, 16)
            self.mlp = torch.nn.Sequential(
                torch.nn.Dropout(0.1),
                torch.nn.Linear(3 * hidden + 2 * 32 + 16 + 1, 256),
                torch.nn.GELU(),
                torch.nn.Linear(256, n_classes),
            )

    return Head()


def _pool(states: Any, off: Any, lo: int, hi: int) -> Any:
    """Mean state of the word pieces inside ``[lo, hi)`` (else those overlapping it, else the first)."""
    inside = (off[:, 0] >= lo) & (off[:, 1] <= hi) & (off[:, 1] > off[:, 0])
    if not bool(inside.any()):
        inside = (off[:, 1] > lo) & (off[:, 0] < hi)
    return states[inside].mean(0) if bool(inside.any()) else states[0]


def scatter(lines: list[dict[str, Any]], probs: np.ndarray, out: list[np.ndarray]) -> None:
    """Row ``k`` of ``probs`` (line order, then pair order) into its row's and candidate's place in ``out``."""
    k = 0
    for x in lines:
        for j in x["pairs"]:
            out[x["row"]][j] = probs[k]
            k += 1


@dataclass
class PairIndex:
    """Per candidate pair (line order, then pair order): rows of both spans in the pooled table, their
    label ids (``len(labels)``: unseen in training), distance bucket and order (+1 head first)."""

    ia: list[int] = field(default_factory=list)
    ib: list[int] = field(default_factory=list)
    la: list[int] = field(default_factory=list)
    lb: list[int] = field(default_factory=list)
    dist: list[int] = field(default_factory=list)
    order: list[float] = field(default_factory=list)


def pair_inputs(
    lines: list[dict[str, Any]],
    states: Sequence[Any],
    offsets: Sequence[Any],
    cands: Sequence[Sequence[Pair]],
    labels: Sequence[str],
) -> tuple[list[Any], PairIndex]:
    """The pair MLP's inputs for ``lines``: one pooled state per distinct (line, span), and the pair index.

    ``states[k]`` and ``offsets[k]`` are line ``k``'s final piece states and character offsets, torch
    tensors or numpy arrays (both runtimes share this code).
    """  # fmt: skip
    label_ids = {lab: i for i, lab in enumerate(labels)}
    unknown = len(labels)
    pooled: list[Any] = []
    where: dict[tuple[int, str], int] = {}
    p = PairIndex()
    for k, x in enumerate(lines):
        for j in x["pairs"]:
            a, b = cands[x["row"]][j]
            for s in (a, b):
                if (k, s["id"]) not in where:
                    where[(k, s["id"])] = len(pooled)
                    pooled.append(_pool(states[k], offsets[k], s["start"] - x["lineoff"], s["end"] - x["lineoff"]))
            p.ia.append(where[(k, a["id"])])
            p.ib.append(where[(k, b["id"])])
            p.la.append(label_ids.get(a["label"], unknown))
            p.lb.append(label_ids.get(b["label"], unknown))
            gap = max(b["start"] - a["end"], a["start"] - b["end"], 0)
            p.dist.append(min(DIST_BUCKETS - 1, int(math.log2(gap + 1))))
            p.order.append(1.0 if a["start"] <= b["start"] else -1.0)
    return pooled, p


@dataclass
class MiniLMPairScorer:
    """Frozen MiniLM base + fine-tuned top layers and a pair MLP over ``classes``."""

    base_dir: Path
    top_layers: int
    labels: list[str]
    classes: list[str]
    head: Any
    meta: dict[str, Any] = field(default_factory=dict)
    digest: str = ""

    @classmethod
    def fresh(
        cls,
        labels: Sequence[str],
        classes: Sequence[str],
        base_dir: Path | None = None,
        top_layers: int = 2,
        seed: int = 0,
    ) -> MiniLMPairScorer:
        base, encoder = base_encoder(base_dir, top_layers, seed)
        head = _head(encoder, top_layers, len(labels), len(classes))
        return cls(base, top_layers, list(labels), list(classes), head)

    @classmethod
    def load(cls, path: Path | str, base_dir: Path | None = None) -> MiniLMPairScorer:
        from clinical_nlp.models.embeddings import default_transformer_dir

        p = Path(path)
        base = Path(base_dir or default_transformer_dir())
        meta, state = read_top(p, "relation pair scorer", base)
        scorer = cls.fresh(meta["labels"], meta["classes"], base, int(meta["top_layers"]))
        scorer.head.load_state_dict(state)
        scorer.head.train(False)
        scorer.meta = meta
        scorer.digest = file_sha(p / "weights.safetensors")[:12]
        return scorer

    def save(self, path: Path | str) -> Path:
        p = Path(path)
        meta = {**self.meta, "top_layers": self.top_layers, "labels": self.labels, "classes": self.classes}
        self.digest = write_top(self.head, p, meta, self.base_dir)
        from clinical_nlp.models.relations_onnx import export_pair_graph

        export_pair_graph(self, p)  # the same scorer for ONNX Runtime (models/relations_onnx.py)
        return p

    # ------------------------------------------------------------------ encoding
    def _frozen(self, lines: list[dict[str, Any]], batch: int = 64) -> None:
        """Adds each line's frozen states (``h``, fp16) and word-piece offsets (``off``)."""
        import torch

        from clinical_nlp.models.embeddings import load_minilm

        tok, encoder = load_minilm(str(self.base_dir))
        n_base = len(encoder.encoder.layer) - self.top_layers
        order = sorted(range(len(lines)), key=lambda i: len(lines[i]["text"]))
        with torch.no_grad():
            for b in range(0, len(order), batch):
                chunk = [lines[i] for i in order[b : b + batch]]
                enc = tok([x["text"] for x in chunk], padding=True, truncation=True, max_length=MAX_PIECES,
                          return_offsets_mapping=True, return_tensors="pt")  # fmt: skip
                off = enc.pop("offset_mapping")
                h = encoder.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
                h = run_layers(encoder.encoder.layer[:n_base], h, enc["attention_mask"])
                for k, x in enumerate(chunk):
                    n = int(enc["attention_mask"][k].sum())
                    x["h"], x["off"] = h[k, :n].half(), off[k, :n]

    def _logits(self, lines: list[dict[str, Any]], rows: Sequence[Row], cands: Sequence[Sequence[Pair]]) -> Any:
        """Class logits of every pair of ``lines`` (in line order, then pair order)."""
        import torch

        hidden = lines[0]["h"].shape[-1]
        n = max(len(x["h"]) for x in lines)
        h = torch.zeros(len(lines), n, hidden)
        mask = torch.zeros(len(lines), n)
        for k, x in enumerate(lines):
            h[k, : len(x["h"])] = x["h"].float()
            mask[k, : len(x["h"])] = 1
        h = run_layers(self.head.layers, h, mask)
        pooled, p = pair_inputs(lines, [h[k, : len(x["off"])] for k, x in enumerate(lines)],
                                [x["off"] for x in lines], cands, self.labels)  # fmt: skip
        table = torch.stack(pooled)
        ha, hb = table[p.ia], table[p.ib]
        feats = torch.cat(
            [
                ha, hb, ha * hb,
                self.head.labels(torch.tensor(p.la)), self.head.labels(torch.tensor(p.lb)),
                self.head.dist(torch.tensor(p.dist)), torch.tensor(p.order)[:, None],
            ],
            dim=1,
        )  # fmt: skip
        return self.head.mlp(feats)

    # ------------------------------------------------------------------ train / predict
    def fit(
        self,
        rows: Sequence[Row],
        cands: Sequence[Sequence[Pair]],
        targets: Sequence[Sequence[int]],
        config: PairTrainConfig,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[float]:
        """Fine-tune on ``targets`` (class index per candidate); returns the mean loss of each epoch.

        ``progress(lines done now, lines in all epochs)`` after every batch.
        """
        import torch

        lines = _lines(rows, cands)
        if not lines:
            return []
        self._frozen(lines)
        params = [p for n, p in self.head.named_parameters() if n.startswith("layers.")]
        rest = [p for n, p in self.head.named_parameters() if not n.startswith("layers.")]
        opt = torch.optim.AdamW([{"params": params, "lr": config.lr_layers}, {"params": rest, "lr": config.lr_head}])
        rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        losses = []
        for _ in range(config.epochs):
            self.head.train(True)
            total, steps = 0.0, 0
            perm = rng.permutation(len(lines))
            for b in range(0, len(perm), config.batch_lines):
                batch = [lines[i] for i in perm[b : b + config.batch_lines]]
                y = torch.tensor([targets[x["row"]][j] for x in batch for j in x["pairs"]])
                loss = torch.nn.functional.cross_entropy(self._logits(batch, rows, cands), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, steps = total + float(loss.detach()), steps + 1
                if progress:
                    progress(len(batch), config.epochs * len(lines))
            losses.append(round(total / max(1, steps), 4))
        self.head.train(False)
        for x in lines:
            x.pop("h", None)
        return losses

    def pair_probs(self, rows: Sequence[Row], cands: Sequence[Sequence[Pair]], batch: int = 64) -> list[np.ndarray]:
        """Per row, the class probabilities of its candidates, ``(n_candidates, n_classes)``, in their order."""
        import torch

        out = [np.zeros((len(c), len(self.classes))) for c in cands]
        lines = sorted(_lines(rows, cands), key=lambda x: len(x["text"]))  # similar lengths batched: little padding
        if not lines:
            return out
        self._frozen(lines)
        self.head.train(False)
        with torch.no_grad():
            for b in range(0, len(lines), batch):
                chunk = lines[b : b + batch]
                scatter(chunk, torch.softmax(self._logits(chunk, rows, cands), -1).numpy(), out)
        return out


def train_pair_scorer(
    rows: Sequence[Row], linear: Any, config: PairTrainConfig, progress: Callable[[int, int], None] | None = None
) -> tuple[MiniLMPairScorer, list[float]]:
    """A scorer fine-tuned on ``rows``' candidates (those of the fitted ``linear`` relation model)."""
    from clinical_nlp.models.relations import NONE, candidates, gold_pairs

    cidx = {c: i for i, c in enumerate(linear.classes)}
    cands = [candidates(row, linear.allowed) for row in rows]
    targets = []
    for row, pairs in zip(rows, cands, strict=True):
        gold = gold_pairs(row)
        targets.append([cidx.get(gold.get((a["id"], b["id"]), NONE), cidx[NONE]) for a, b in pairs])
    labels = sorted({str(s["label"]) for row in rows for s in row.get("spans") or []})
    scorer = MiniLMPairScorer.fresh(labels, linear.classes, top_layers=config.top_layers, seed=config.seed)
    losses = scorer.fit(rows, cands, targets, config, progress)
    scorer.meta.update(epochs=config.epochs, losses=losses, train_rows=len(rows))
    return scorer, losses
