"""The interface every entity model kind shares, its versions and its model directory."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.errors import ModelError
from clinical_nlp.models.entities.config import FORMAT_VERSION, METRICS_FILE, MODEL_FILE, bio_tags
from clinical_nlp.models.entities.decode import decode_spans, viterbi_bio_batch
from clinical_nlp.models.entities.spans import tidy_spans
from clinical_nlp.types import Note, Span

#: Per-label span-score calibration written by ``scripts/calibrate_entity_model.py`` (optional).
CALIBRATION_FILE = "calibration.json"


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def new_version(kind: str, dhash: str, seed: int) -> str:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%f")[:-3]
    return f"{kind}-{stamp}-{dhash[:8]}-s{seed}"


class EntityModel:
    """A trained entity model (either kind) with its registry metadata.

    Attributes:
        version: unique version id (``<kind>-<utc time>-<data hash>-s<seed>``).
        labels: the entity labels it predicts.
        kind: ``"spacy"`` or ``"transformer"``.
        path: the model directory once saved or loaded, else ``None``.
        meta: everything written to ``model.json``.
        metrics: everything written to ``metrics.json``.
    """

    kind: str = ""

    def __init__(
        self,
        labels: Sequence[str],
        meta: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        path: Path | None = None,
    ):
        self.labels = tuple(labels)
        self.tags = bio_tags(self.labels)
        self.meta = dict(meta)
        self.metrics = dict(metrics or {})
        self.path = path

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def name(self) -> str:
        return f"entities-{self.kind}"

    @property
    def source(self) -> str:
        """Provenance written on every predicted span: ``model:<name>@<version>``."""
        return f"model:{self.name}@{self.version}"

    # --- to implement per kind -------------------------------------------
    def token_offsets(self, notes: Sequence[Note]) -> list[list[tuple[int, int]]]:
        """Character ranges of the tokens that :meth:`token_probabilities` rows refer to."""
        raise NotImplementedError

    def _probabilities(self, notes: Sequence[Note], stochastic: bool) -> list[np.ndarray]:
        raise NotImplementedError

    def _save_weights(self, path: Path) -> None:
        raise NotImplementedError

    # --- shared -----------------------------------------------------------
    def token_probabilities(self, notes: Sequence[Note], *, mc_dropout: int = 0) -> list[np.ndarray]:
        """Per note, an ``(n_tokens, n_tags)`` array of tag probabilities (rows sum to 1).

        Columns follow :attr:`tags` (``O``, ``B-<label>``, ``I-<label>`` …); rows
        follow :meth:`token_offsets`. With ``mc_dropout=k > 0`` the result is the
        mean of ``k`` stochastic forward passes with dropout on (Monte-Carlo dropout).
        """
        notes = list(notes)
        if mc_dropout and mc_dropout > 0:
            runs = [self._probabilities(notes, stochastic=True) for _ in range(mc_dropout)]
            return [np.mean([r[i] for r in runs], axis=0) for i in range(len(notes))]
        return self._probabilities(notes, stochastic=False)

    def predict(self, notes: Sequence[Note]) -> list[tuple[Span, ...]]:
        """Spans per note, with ``score`` and ``source`` = :attr:`source`.

        The score is the mean tag probability of the span's tokens, mapped through the model
        directory's ``calibration.json`` when there is one (per label: the probability that a span
        with that raw score is exactly right, fitted on held-out notes).
        """
        notes = list(notes)
        spans = self._decode(notes, self.token_offsets(notes), self._probabilities(notes, stochastic=False))
        return self.calibrated(spans)

    def calibration(self) -> dict[str, dict[str, list[float]]]:
        """``{label: {"x": raw scores, "y": calibrated}}`` from ``calibration.json`` (empty without one)."""
        if not hasattr(self, "_calibration"):
            table: dict[str, dict[str, list[float]]] = {}
            file = self.path / CALIBRATION_FILE if self.path else None
            if file is not None and file.exists():
                try:
                    table = dict(json.loads(file.read_text(encoding="utf-8"))["labels"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ModelError(f"{file}: not a calibration table ({exc})") from None
            self._calibration = table
        return self._calibration

    def calibrated(self, per_note: Sequence[tuple[Span, ...]]) -> list[tuple[Span, ...]]:
        """``per_note`` with each span's score mapped through its label's calibration."""
        from dataclasses import replace

        table = self.calibration()
        if not table:
            return list(per_note)

        def one(s: Span) -> Span:
            t = table.get(s.label)
            if t is None or s.score is None:
                return s
            return replace(s, score=round(float(np.interp(s.score, t["x"], t["y"])), 4))

        return [tuple(one(s) for s in spans) for spans in per_note]

    def _decode(
        self, notes: Sequence[Note], offsets: Sequence[Sequence[tuple[int, int]]], probs: Sequence[np.ndarray]
    ) -> list[tuple[Span, ...]]:
        """Viterbi-decoded, boundary-tidied spans from token probabilities."""
        paths = viterbi_bio_batch(probs, self.tags)
        return [
            tidy_spans(n.text, decode_spans(n.text, off, p, self.tags, self.source, path))
            for n, off, p, path in zip(notes, offsets, probs, paths, strict=True)
        ]

    def save(self, path: Path | str) -> Path:
        """Write the model directory (weights, ``model.json``, ``metrics.json``) atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self._save_weights(tmp)
            meta = dict(
                self.meta, kind=self.kind, labels=list(self.labels), tags=list(self.tags), format_version=FORMAT_VERSION
            )
            (tmp / MODEL_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
            (tmp / METRICS_FILE).write_text(json.dumps(self.metrics, indent=2), encoding="utf-8")
            if path.exists():
                if not (path / MODEL_FILE).exists() and any(path.iterdir()):
                    raise ModelError(f"{path}: exists and is not a model directory; refusing to overwrite")
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = path
        return path


def read_model_metrics(path: Path) -> dict[str, Any]:
    """``metrics.json`` of a model directory (empty when absent)."""
    file = path / METRICS_FILE
    return json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}


def read_model_meta(path: Path | str) -> dict[str, Any]:
    """``model.json`` of a model directory; :class:`ModelError` when it is not one."""
    path = Path(path)
    file = path / MODEL_FILE
    if not file.exists():
        raise ModelError(f"{path}: not a model directory ({MODEL_FILE} missing)")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{file}: unreadable model metadata: {exc}") from None
