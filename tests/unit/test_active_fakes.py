"""Tiny fake models implementing the entity-model protocol (for strategy tests only)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from clinical_nlp.types import AnnotatedNote, Note, Span

_TOK = re.compile(r"\S+")


class FixedProbModel:
    """Returns preset (n_tokens, n_tags) arrays per note id."""

    def __init__(self, probs: dict[str, np.ndarray]):
        self.probs = probs
        self.calls: list[int] = []

    def token_probabilities(self, notes: Sequence[Note], mc_dropout: int = 0) -> list[np.ndarray]:
        self.calls.append(mc_dropout)
        return [self.probs[n.id] for n in notes]

    def predict(self, notes: Sequence[Note]) -> list[tuple[Span, ...]]:
        return [() for _ in notes]


class MemorizerModel:
    """Learns word -> label from training spans; tags known words, uncertain on unknown ones."""

    def __init__(self, docs: Sequence[AnnotatedNote], labels: Sequence[str]):
        self.labels = ["O", *sorted(labels)]
        self.lexicon: dict[str, str] = {}
        for d in docs:
            for s in d.spans:
                self.lexicon[d.text[s.start : s.end].lower()] = s.label

    def token_probabilities(self, notes: Sequence[Note], mc_dropout: int = 0) -> list[np.ndarray]:
        out = []
        k = len(self.labels)
        for n in notes:
            rows = []
            for m in _TOK.finditer(n.text):
                label = self.lexicon.get(m.group().lower())
                if label is None:
                    rows.append(np.full(k, 1.0 / k))
                else:
                    row = np.full(k, 0.05 / max(k - 1, 1))
                    row[self.labels.index(label)] = 0.95
                    rows.append(row)
            out.append(np.array(rows).reshape(len(rows), k))
        return out

    def predict(self, notes: Sequence[Note]) -> list[tuple[Span, ...]]:
        out = []
        for n in notes:
            spans = []
            for m in _TOK.finditer(n.text):
                label = self.lexicon.get(m.group().lower())
                if label is not None:
                    spans.append(Span(m.start(), m.end(), label, m.group(), score=0.95))
            out.append(tuple(spans))
        return out


def memorizer_train_fn(labels: Sequence[str]):
    def train(docs: Sequence[AnnotatedNote], seed: int) -> MemorizerModel:
        return MemorizerModel(docs, labels)

    return train
