"""Create and open projects (a config file, a guidelines copy and the store)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from clinical_nlp.config import PROJECT_FILE, Project, ProjectConfig, default_guidelines_dir, load_project
from clinical_nlp.errors import ConfigError
from clinical_nlp.store import Store


def init_project(
    directory: Path | str,
    *,
    name: str | None = None,
    store_url: str = "sqlite:///state.db",
    guidelines: Path | str | None = None,
    force: bool = False,
) -> Project:
    """Create a project folder with ``clinical-nlp.yaml``, ``guidelines/`` and the store."""
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    cfg_path = root / PROJECT_FILE
    if cfg_path.exists() and not force:
        raise ConfigError(f"{cfg_path} already exists (use --force to overwrite)")
    source = Path(guidelines or default_guidelines_dir())
    if not (source / "label_schema.yaml").exists():
        raise ConfigError(f"{source}: no label_schema.yaml to copy")
    target = root / "guidelines"
    if source.resolve() != target.resolve():
        shutil.copytree(source, target, dirs_exist_ok=True)
    config = ProjectConfig(name=name or root.name, store_url=store_url)
    cfg_path.write_text(yaml.safe_dump(config.dict(), sort_keys=False), encoding="utf-8")
    project = load_project(root)
    project.guideline()  # validates the schema and guideline
    Store(project.store_url)
    return project


def open_store(project: Project) -> Store:
    """The state store of a project."""
    return Store(project.store_url)


#: Folder of the implicit project used when a command runs outside any project.
SCRATCH_DIR = ".clinical-nlp"


def resolve_project(directory: Path | str | None = None) -> Project:
    """The project in ``directory`` (or cwd and its parents), else an implicit one.

    Commands such as ``doccano push`` need a store for their bookkeeping; run
    outside a project they create ``./.clinical-nlp/`` (default guidelines,
    SQLite store, ``require_deid: false`` with a warning on push) instead of failing.
    """
    try:
        return load_project(directory)
    except ConfigError:
        if directory is not None and (Path(directory) / PROJECT_FILE).exists():
            raise
    scratch = Path(directory or Path.cwd()) / SCRATCH_DIR
    if (scratch / PROJECT_FILE).exists():
        return load_project(scratch)
    project = init_project(scratch, name="scratch")
    cfg = project.config.copy(update={"require_deid": False})
    (scratch / PROJECT_FILE).write_text(yaml.safe_dump(cfg.dict(), sort_keys=False), encoding="utf-8")
    return load_project(scratch)
