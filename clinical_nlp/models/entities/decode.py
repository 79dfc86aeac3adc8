"""Constrained BIO decoding: Viterbi over per-token tag probabilities, then scored spans."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

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


#: score of a forbidden transition or start
_NEG = -1e18
#: sequences decoded together (sorted by length, so little padding): bounds the work arrays
_GROUP = 32


@lru_cache(maxsize=16)
def _transitions(tags: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    allowed, start_ok = _transition_mask(tags)
    return np.where(allowed, 0.0, _NEG), start_ok


def viterbi_bio(probs: np.ndarray, tags: Sequence[str]) -> list[int]:
    """Most probable valid BIO tag sequence given per-token probabilities ``(n, n_tags)``."""
    return viterbi_bio_batch([probs], tags)[0]


def viterbi_bio_batch(probs: Sequence[np.ndarray], tags: Sequence[str]) -> list[list[int]]:
    """:func:`viterbi_bio` of every sequence, up to :data:`_GROUP` of similar length stepped together.

    Each sequence gets exactly the arithmetic it would get alone (a finished one is carried
    unchanged), so the paths are the same; the per-step numpy overhead is shared.
    """
    trans, start_ok = _transitions(tuple(tags))
    out: list[list[int]] = [[] for _ in probs]
    order = sorted((i for i, p in enumerate(probs) if len(p)), key=lambda i: len(probs[i]))
    for g in range(0, len(order), _GROUP):
        group = order[g : g + _GROUP]
        lengths = np.array([len(probs[i]) for i in group])
        logp = np.zeros((len(group), int(lengths.max()), len(tags)))
        for k, i in enumerate(group):
            logp[k, : lengths[k]] = np.log(np.clip(probs[i], 1e-12, 1.0))
        score = np.where(start_ok, logp[:, 0], _NEG)
        back = np.zeros(logp.shape, dtype=np.int64)
        for t in range(1, logp.shape[1]):
            cand = score[:, :, None] + trans
            back[:, t] = cand.argmax(axis=1)
            score = np.where((t < lengths)[:, None], cand.max(axis=1) + logp[:, t], score)
        for k, i in enumerate(group):
            path = [int(score[k].argmax())]
            for t in range(int(lengths[k]) - 1, 0, -1):
                path.append(int(back[k, t, path[-1]]))
            out[i] = path[::-1]
    return out


def decode_spans(
    text: str,
    offsets: Sequence[tuple[int, int]],
    probs: np.ndarray,
    tags: Sequence[str],
    source: str,
    path: Sequence[int] | None = None,
) -> tuple[Span, ...]:
    """Turn token offsets + tag probabilities into scored spans (score = mean tag probability).

    ``path``: the Viterbi tag path when already decoded (:func:`viterbi_bio_batch`).
    """
    path = viterbi_bio(probs, tags) if path is None else path
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
