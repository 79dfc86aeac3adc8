"""The ensemble kind: spaCy tagger + transformer probabilities averaged on the spaCy token grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from clinical_nlp.errors import ConfigError, ModelError
from clinical_nlp.metrics import corpus_span_prf
from clinical_nlp.models.entities.base import EntityModel
from clinical_nlp.models.entities.config import TrainConfig
from clinical_nlp.models.entities.spacy_model import SpacyEntityModel, train_spacy
from clinical_nlp.models.entities.transformer_model import TransformerEntityModel, train_transformer


def project_piece_probs(
    piece_offsets: Sequence[tuple[int, int]],
    probs: np.ndarray,
    token_offsets: Sequence[tuple[int, int]],
    tags: Sequence[str],
) -> np.ndarray:
    """Word-piece tag probabilities moved onto another token grid.

    A token takes the row of the first piece overlapping it; when that piece began before
    the token, its ``B-x`` mass becomes ``I-x`` (the token continues the piece's entity).
    Tokens no piece overlaps get a NaN row (the caller falls back to the other model)."""
    out = np.full((len(token_offsets), len(tags)), np.nan)
    if not len(piece_offsets):
        return out
    starts = np.array([a for a, _ in piece_offsets])
    ends = np.array([b for _, b in piece_offsets])
    b_to_i = [(tags.index(t), tags.index("I-" + t[2:])) for t in tags if t.startswith("B-")]
    for k, (a, b) in enumerate(token_offsets):
        j = int(np.searchsorted(ends, a, side="right"))  # first piece ending after the token start
        if j >= len(starts) or starts[j] >= b:
            continue
        row = probs[j].copy()
        if starts[j] < a:
            for bi, ii in b_to_i:
                row[ii] += row[bi]
                row[bi] = 0.0
        out[k] = row
    return out


class EnsembleEntityModel(EntityModel):
    """spaCy tagger + transformer: tag probabilities averaged on the spaCy token grid
    (``weight`` on the transformer), Viterbi-decoded like the other kinds."""

    kind = "ensemble"

    def __init__(
        self,
        spacy_model: SpacyEntityModel,
        transformer_model: TransformerEntityModel,
        labels,
        meta,
        metrics=None,
        path=None,
    ):
        super().__init__(labels, meta, metrics, path)
        if spacy_model.tags != self.tags or transformer_model.tags != self.tags:
            raise ModelError("ensemble members must predict the same labels")
        self.spacy_model = spacy_model
        self.transformer_model = transformer_model
        self.weight = float(meta.get("ensemble_weight", 0.6))

    def token_offsets(self, notes):
        return self.spacy_model.token_offsets(notes)

    def member_probabilities(self, notes, stochastic: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(spaCy rows, transformer rows projected on the spaCy grid) per note."""
        notes = list(notes)
        p_s = self.spacy_model._probabilities(notes, stochastic)
        p_t = self.transformer_model._probabilities(notes, stochastic)
        grid = self.spacy_model.token_offsets(notes)
        pieces = self.transformer_model.token_offsets(notes)
        return p_s, [project_piece_probs(pc, pt, g, self.tags) for pc, pt, g in zip(pieces, p_t, grid, strict=True)]

    @staticmethod
    def combine(p_s: np.ndarray, p_t: np.ndarray, weight: float) -> np.ndarray:
        missing = np.isnan(p_t).any(axis=1)
        out = (1.0 - weight) * p_s + weight * np.where(missing[:, None], p_s, p_t)
        return out / np.clip(out.sum(axis=1, keepdims=True), 1e-12, None)

    def _probabilities(self, notes, stochastic):
        p_s, p_t = self.member_probabilities(notes, stochastic)
        return [self.combine(a, b, self.weight) for a, b in zip(p_s, p_t, strict=True)]

    def _save_weights(self, path):
        self.spacy_model.save(path / "members" / "spacy")
        self.transformer_model.save(path / "members" / "transformer")


def train_ensemble(train, dev, config: TrainConfig, meta, progress: bool):
    """Train the spaCy member, then the transformer member, then pick the mixing weight on dev."""
    if config.base_model is not None:
        raise ConfigError("the ensemble kind trains from scratch (no --base-model)")
    s_cfg = replace(config, kind="spacy", spacy_ner=False)
    t_cfg = replace(
        config,
        kind="transformer",
        epochs=config.transformer_epochs,
        learning_rate=config.transformer_learning_rate,
        batch_size=16,
        dropout=0.1,
    )
    s_model, s_info = train_spacy(
        train, dev, s_cfg, dict(meta, config=s_cfg.to_json(), version=f"{meta['version']}.spacy"), progress
    )
    t_model, t_info = train_transformer(
        train, dev, t_cfg, dict(meta, config=t_cfg.to_json(), version=f"{meta['version']}.transformer"), progress
    )
    weight = config.ensemble_weight
    history = {"spacy": s_info["history"], "transformer": t_info["history"]}
    if weight is None:
        weight = 0.6
        if dev:
            probe = EnsembleEntityModel(s_model, t_model, config.labels, dict(meta, ensemble_weight=weight))
            notes = [d.note for d in dev]
            p_s, p_t = probe.member_probabilities(notes, stochastic=False)  # members run once, not per weight
            offsets = probe.token_offsets(notes)
            scores = {}
            for w in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                preds = probe._decode(
                    notes, offsets, [EnsembleEntityModel.combine(a, b, w) for a, b in zip(p_s, p_t, strict=True)]
                )
                scores[w] = corpus_span_prf([d.spans for d in dev], preds, mode="exact", labels=config.labels)[
                    "__micro__"
                ].f1
            weight = max(scores, key=lambda w: (scores[w], -abs(w - 0.6)))
            history["weight_search"] = {str(k): round(v, 4) for k, v in scores.items()}
    meta["ensemble_weight"] = weight
    info = {
        "history": history,
        "steps": s_info["steps"] + t_info["steps"],
        "span_policy": s_info["span_policy"],
        "best_epoch": {"spacy": s_info["best_epoch"], "transformer": t_info["best_epoch"]},
    }
    return EnsembleEntityModel(s_model, t_model, config.labels, meta), info
