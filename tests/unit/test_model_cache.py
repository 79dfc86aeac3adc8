"""Entity models are loaded once per process while their files are unchanged."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from clinical_nlp.models import registry
from clinical_nlp.models.default_entities import default_entity_model_dir


def test_cached_entity_model_reloads_only_when_files_change(tmp_path: Path, monkeypatch) -> None:
    src = default_entity_model_dir()
    assert src is not None
    model_dir = tmp_path / "model"
    shutil.copytree(src, model_dir)
    loads: list[Path] = []
    real = registry.load_entity_model

    def counting(path):
        loads.append(Path(path))
        return real(path)

    monkeypatch.setattr(registry, "load_entity_model", counting)
    first = registry.cached_entity_model(model_dir)
    assert registry.cached_entity_model(model_dir) is first and len(loads) == 1
    meta = model_dir / "metrics.json"
    os.utime(meta, ns=(meta.stat().st_atime_ns, meta.stat().st_mtime_ns + 10**9))  # a retrained model's files
    again = registry.cached_entity_model(model_dir)
    assert again is not first and len(loads) == 2
    assert registry.cached_entity_model(model_dir) is again and len(loads) == 2
