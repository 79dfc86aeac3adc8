"""Create and open projects (a config file, a guidelines copy and the store)."""

from __future__ import annotations

import datetime as _dt
import re
import shutil
from pathlib import Path

import yaml

from clinical_nlp.config import (
    PROJECT_FILE,
    DoccanoSettings,
    Project,
    ProjectConfig,
    default_guidelines_dir,
    load_project,
)
from clinical_nlp.errors import ClinicalNLPError, ConfigError
from clinical_nlp.store import Store


def init_project(
    directory: Path | str,
    *,
    name: str | None = None,
    store_url: str | None = None,
    guidelines: Path | str | None = None,
    force: bool = False,
) -> Project:
    """Create a project folder with ``clinical-nlp.yaml``, ``guidelines/`` and the store.

    ``force`` re-creates an existing project's config and guideline files, first copying each one it
    replaces with different content to ``NAME.bak-<UTC time>`` (a team's own label schema is never lost);
    the existing store URL is kept unless ``store_url`` is given (the default: ``sqlite:///state.db``).
    """
    root = Path(directory).resolve()
    cfg_path = root / PROJECT_FILE
    if cfg_path.exists() and not force:
        raise ConfigError(f"{cfg_path} already exists (use --force to overwrite)")
    if store_url is not None and not store_url.startswith("sqlite"):
        Store(store_url)  # a server store is checked before any file is written (no driver, server down)
    source = Path(guidelines or default_guidelines_dir())
    if not (source / "label_schema.yaml").exists():
        raise ConfigError(f"{source}: no label_schema.yaml to copy")
    new_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    if store_url is None:
        store_url = _existing_store_url(cfg_path) or "sqlite:///state.db"
    target = root / "guidelines"
    created = [p for p in (cfg_path, target) if not p.exists()] + ([root] if new_root else [])
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
    if source.resolve() != target.resolve():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            _back_up(target / path.relative_to(source), path.read_bytes(), stamp)
        shutil.copytree(source, target, dirs_exist_ok=True)
    name = name or root.name
    config = ProjectConfig(name=name, store_url=store_url, doccano=DoccanoSettings(project=doccano_project_name(name)))
    text = yaml.safe_dump(config.dict(), sort_keys=False)
    _back_up(cfg_path, text.encode("utf-8"), stamp)
    cfg_path.write_text(text, encoding="utf-8")
    try:
        project = load_project(root)
        project.guideline()  # validates the schema and guideline
        Store(project.store_url)
    except ClinicalNLPError:
        for path in created:  # a refused init leaves no project behind (a re-run is not "already exists")
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        raise
    return project


def _existing_store_url(cfg_path: Path) -> str | None:
    """The store URL of the config being replaced (a readable one), so ``--force`` keeps the project's store."""
    try:
        data = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else None
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    url = data.get("store_url") if isinstance(data, dict) else None
    return url if isinstance(url, str) and url.strip() else None


def _back_up(path: Path, new: bytes, stamp: str) -> None:
    """Copy ``path`` to ``path.bak-<stamp>`` when it exists and ``new`` would change it."""
    if path.is_file() and path.read_bytes() != new:
        shutil.copy2(path, path.with_name(f"{path.name}.bak-{stamp}"))


def doccano_project_name(project_name: str) -> str:
    """The project's own Doccano project by default (projects never share one unless configured to)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", project_name.strip()).strip("-")
    return f"clinical-nlp-{slug}" if slug else "clinical-nlp"


def open_store(project: Project) -> Store:
    """The state store of a project."""
    return Store(project.store_url)


#: Folder of the implicit project that earlier versions created outside any project (still opened).
SCRATCH_DIR = ".clinical-nlp"


def resolve_project(directory: Path | str | None = None) -> Project:
    """The project in ``directory`` (or the working directory and its parents).

    Outside any project this is an error naming the folder searched (earlier versions
    silently created ``./.clinical-nlp/``; such a folder is still opened so that its
    store is not stranded).
    """
    try:
        return load_project(directory)
    except ConfigError:
        if directory is not None and (Path(directory) / PROJECT_FILE).exists():
            raise
    where = Path(directory or Path.cwd())
    if (where / SCRATCH_DIR / PROJECT_FILE).exists():
        return load_project(where / SCRATCH_DIR)
    raise ConfigError(
        f"no clinical-nlp project in {where.resolve()} or its parents: create one with "
        "'clinical-nlp init DIR' and run there, or pass the project folder"
    )
