"""The model registry: load a model directory of any kind, record versions in the store, list them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinical_nlp.errors import ModelError
from clinical_nlp.models.entities.base import EntityModel, read_model_meta, read_model_metrics
from clinical_nlp.models.entities.config import MODEL_FILE
from clinical_nlp.models.entities.ensemble import EnsembleEntityModel
from clinical_nlp.models.entities.spacy_model import SpacyEntityModel
from clinical_nlp.models.entities.transformer_model import TransformerEntityModel


def load_entity_model(path: Path | str) -> EntityModel:
    """Load a model directory written by :func:`train_entity_model` / :meth:`EntityModel.save`."""
    path = Path(path)
    meta = read_model_meta(path)
    metrics = read_model_metrics(path)
    kind = meta.get("kind")
    if kind == SpacyEntityModel.kind:
        return SpacyEntityModel.load(path, meta, metrics)
    if kind == TransformerEntityModel.kind:
        return TransformerEntityModel.load(path, meta, metrics)
    if kind == EnsembleEntityModel.kind:
        members = [load_entity_model(path / "members" / k) for k in ("spacy", "transformer")]
        if not isinstance(members[0], SpacyEntityModel) or not isinstance(members[1], TransformerEntityModel):
            raise ModelError(f"{path}: ensemble members have the wrong kinds")
        return EnsembleEntityModel(members[0], members[1], meta.get("labels") or [], meta, metrics, path)
    raise ModelError(f"{path}: unknown model kind {kind!r} in {MODEL_FILE}")


_LOADED: dict[str, tuple[tuple, EntityModel]] = {}


def cached_entity_model(path: Path | str) -> EntityModel:
    """:func:`load_entity_model`, loaded once per process while the directory's files are unchanged
    (names, sizes and modification times), so repeated ``preannotate`` calls do not reload it."""
    path = Path(path).resolve()
    stamp = tuple(
        sorted(
            (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file()
        )
    )
    hit = _LOADED.get(str(path))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    model = load_entity_model(path)
    if len(_LOADED) >= 4:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[str(path)] = (stamp, model)
    return model


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    dev = metrics.get("dev") or {}
    return {
        "dev_strict_f1": (dev.get("strict") or {}).get("micro", {}).get("f1"),
        "dev_overlap_f1": (dev.get("overlap") or {}).get("micro", {}).get("f1"),
        "train_seconds": metrics.get("train_seconds"),
    }


def register_model(store: Any, model: EntityModel) -> None:
    """Record the model version in the store (``ModelVersionRow``) and the audit log."""
    from clinical_nlp.audit import AuditLog
    from clinical_nlp.store import ModelVersionRow

    summary = dict(
        _summary(model.metrics),
        data_hash=model.meta.get("data_hash"),
        guideline_version=model.meta.get("guideline_version"),
        labels=list(model.labels),
    )
    with store.session() as s:
        s.merge(
            ModelVersionRow(
                version=model.version,
                kind=f"entities-{model.kind}",
                path=str(model.path) if model.path else "",
                parent=model.meta.get("parent_version"),
                metrics=summary,
            )
        )
    AuditLog(store).append(
        "model.trained",
        actor="clinical-nlp",
        details={
            "version": model.version,
            "kind": model.kind,
            "parent": model.meta.get("parent_version"),
            "data_hash": model.meta.get("data_hash"),
            "dev_strict_f1": summary["dev_strict_f1"],
        },
    )


def list_models(models_dir: Path | str | None = None, store: Any | None = None) -> list[dict[str, Any]]:
    """Model versions found under ``models_dir`` (any depth ≤ 2) and/or in the store, newest first."""
    found: dict[str, dict[str, Any]] = {}
    if models_dir is not None and Path(models_dir).exists():
        root = Path(models_dir)
        for file in [*root.glob(MODEL_FILE), *root.glob(f"*/{MODEL_FILE}"), *root.glob(f"*/*/{MODEL_FILE}")]:
            try:
                meta = read_model_meta(file.parent)
            except ModelError:
                continue
            metrics = read_model_metrics(file.parent)
            found[meta["version"]] = {
                "version": meta["version"],
                "kind": meta.get("kind"),
                "path": str(file.parent),
                "parent": meta.get("parent_version"),
                "created_at": meta.get("created_at"),
                "guideline_version": meta.get("guideline_version"),
                "data_hash": meta.get("data_hash"),
                "labels": meta.get("labels"),
                **_summary(metrics),
            }
    if store is not None:
        from sqlalchemy import select

        from clinical_nlp.store import ModelVersionRow

        with store.session() as s:
            for row in s.scalars(select(ModelVersionRow)):
                entry = found.setdefault(row.version, {"version": row.version})
                entry.setdefault("kind", row.kind)
                entry.setdefault("path", row.path)
                entry.setdefault("parent", row.parent)
                entry.setdefault("created_at", row.created_at.isoformat() if row.created_at else None)
                for k, v in (row.metrics or {}).items():
                    entry.setdefault(k, v)
                entry["registered"] = True
    return sorted(found.values(), key=lambda e: str(e.get("created_at") or ""), reverse=True)
