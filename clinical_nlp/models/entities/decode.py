"""Constrained BIO decoding: Viterbi over per-token tag probabilities, then scored spans."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clinical_nlp.types import Span


def _transition_mask(tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    n = len(tags)
    allowed = np.ones((n, n), dtype=bool)
    start_ok = np.ones(n, dtype=bool)
    for j, t in enumerate(tags):
        if t.startswith("I-"):
            label = t[2:]
            start_ok[j] = False
            for i, p in enumerate(tags):
                allowed[i, j] = p in (f"B-{label}", f"I-{label}")
    return allowed, start_ok


def viterbi_bio(probs: np.ndarray, tags: Sequence[str]) -> list[int]:
    """Most probable valid BIO tag sequence given per-token probabilities ``(n, n_tags)``."""
    if len(probs) == 0:
        return []
    allowed, start_ok = _transition_mask(tags)
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    neg = -1e18
    trans = np.where(allowed, 0.0, neg)
    score = np.where(start_ok, logp[0], neg)
    back = np.zeros((len(probs), len(tags)), dtype=np.int64)
    for t in range(1, len(probs)):
        cand = score[:, None] + trans
        back[t] = cand.argmax(axis=0)
        score = cand.max(axis=0) + logp[t]
    path = [int(score.argmax())]
    for t in range(len(probs) - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


def decode_spans(
    text: str, offsets: Sequence[tuple[int, int]], probs: np.ndarray, tags: Sequence[str], source: str
) -> tuple[Span, ...]:
    """Turn token offsets + tag probabilities into scored spans (score = mean tag probability)."""
    path = viterbi_bio(probs, tags)
    spans: list[Span] = []
    cur: list[int] = []
    cur_label: str | None = None

    def flush() -> None:
        if cur and cur_label is not None:
            start, end = offsets[cur[0]][0], offsets[cur[-1]][1]
            if end > start:
                score = float(np.mean([probs[k, path[k]] for k in cur]))
                spans.append(Span(start, end, cur_label, text[start:end], score=round(score, 4), source=source))

    for k, tag_id in enumerate(path):
        tag = tags[tag_id]
        if tag.startswith("B-") or (tag.startswith("I-") and tag[2:] != cur_label):
            flush()
            cur, cur_label = [k], tag[2:]
        elif tag.startswith("I-"):
            cur.append(k)
        else:
            flush()
            cur, cur_label = [], None
    flush()
    return tuple(spans)
