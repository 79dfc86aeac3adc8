"""Settings: the label schema and guideline (data in ``guidelines/``) and project files."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Extra, Field, validator

from clinical_nlp.errors import ConfigError

PROJECT_FILE = "clinical-nlp.yaml"


def repo_root() -> Path:
    """The source checkout root (holds ``guidelines/`` and ``corpora/``)."""
    return Path(__file__).resolve().parent.parent


def shared_corpora_dir() -> Path:
    """``$CLINICAL_NLP_SHARED/corpora`` or ``../shared/corpora`` beside the checkout.

    Benchmarks read the full corpora from here (some are GPL and never bundled).
    """
    env = os.environ.get("CLINICAL_NLP_SHARED")
    base = Path(env) if env else repo_root().parent / "shared"
    return base / "corpora"


def default_guidelines_dir() -> Path:
    """``$CLINICAL_NLP_GUIDELINES`` or the repository's ``guidelines/``."""
    env = os.environ.get("CLINICAL_NLP_GUIDELINES")
    return Path(env) if env else repo_root() / "guidelines"


class _Strict(BaseModel):
    class Config:
        extra = Extra.forbid
        allow_mutation = False


class LabelSpec(_Strict):
    name: str
    color: str = "#cccccc"
    description: str = ""
    attributes: list[str] = Field(default_factory=list)
    safety_critical: bool = False
    requires: list[str] = Field(default_factory=list)
    review_rate: float = 0.1
    #: learned by the entity models and pre-annotated (False: annotators add it by hand)
    pre_annotate: bool = True
    #: suggestions of this label below this score are not pre-annotated (a poor suggestion costs an edit)
    min_score: float = 0.0

    @validator("review_rate")
    def _rate(cls, v: float) -> float:  # noqa: N805
        if not 0.0 <= v <= 1.0:
            raise ValueError("review_rate must be within [0, 1]")
        return v


class AttributeSpec(_Strict):
    values: list[str]
    default: str
    color: str = "#888888"

    @validator("default")
    def _default_allowed(cls, v: str, values: dict[str, Any]) -> str:  # noqa: N805
        if "values" in values and v not in values["values"]:
            raise ValueError(f"default {v!r} is not among the allowed values")
        return v


class RelationSpec(_Strict):
    """A relation type: which labels its head (``arg1``) and tail (``arg2``) may have.

    ``directed: false`` (coordination such as ``AND``/``OR``) means the pair is unordered: either
    argument may come first, and agreement compares the pair without its order.
    """

    name: str
    heads: list[str]
    tails: list[str]
    directed: bool = True
    color: str = "#555555"
    description: str = ""

    def allows(self, head: str, tail: str) -> bool:
        """May a span labelled ``head`` link to one labelled ``tail`` with this type?"""
        if head in self.heads and tail in self.tails:
            return True
        return not self.directed and tail in self.heads and head in self.tails


class AgreementThresholds(_Strict):
    min_cohen_kappa: float = 0.8
    min_span_f1: float = 0.8
    #: a note whose annotators' links agree less than this (pairwise relation F1) goes to the expert
    min_relation_f1: float = 0.8
    min_iou: float = 0.85
    min_iou_oncology: float = 0.9


class GoldPolicy(_Strict):
    """Which annotations may become exported gold (see ``services/gold.py`` for the precedence)."""

    #: may a note labelled by one annotator only (no agreement, no expert) be exported as gold?
    allow_single_annotator: bool = False


class LabelSchema(_Strict):
    """The label schema of ``guidelines/label_schema.yaml``.

    Example:
        >>> schema = load_label_schema()
        >>> "Condition" in schema.label_names
        True
    """

    version: str
    guideline: str = "annotation_guideline.md"
    labels: list[LabelSpec]
    attributes: dict[str, AttributeSpec] = Field(default_factory=dict)
    agreement: AgreementThresholds = Field(default_factory=AgreementThresholds)
    qualifications: dict[str, str] = Field(default_factory=dict)
    gold: GoldPolicy = Field(default_factory=GoldPolicy)
    #: relation types between spans (empty: the Doccano projects have relations off)
    relations: list[RelationSpec] = Field(default_factory=list)

    @validator("labels")
    def _unique(cls, v: list[LabelSpec]) -> list[LabelSpec]:  # noqa: N805
        names = [label.name for label in v]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate labels: {sorted(dupes)}")
        return v

    @validator("relations")
    def _relations_known(cls, v: list[RelationSpec], values: dict[str, Any]) -> list[RelationSpec]:  # noqa: N805
        names = [r.name for r in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate relation types: {dupes}")
        labels = {label.name for label in values.get("labels") or []}
        for r in v:
            unknown = sorted(set(r.heads + r.tails) - labels)
            if unknown:
                raise ValueError(f"relation {r.name!r} names label(s) {unknown} not in the schema's labels")
            if not r.heads or not r.tails:
                raise ValueError(f"relation {r.name!r} needs at least one head and one tail label")
        return v

    @property
    def relation_names(self) -> list[str]:
        return [r.name for r in self.relations]

    @property
    def undirected_relations(self) -> frozenset[str]:
        """Relation types whose argument order carries no meaning (``AND``, ``OR``)."""
        return frozenset(r.name for r in self.relations if not r.directed)

    def relation(self, name: str) -> RelationSpec:
        for spec in self.relations:
            if spec.name == name:
                return spec
        raise ConfigError(f"relation type {name!r} is not in the label schema (known: {self.relation_names})")

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def model_labels(self) -> tuple[str, ...]:
        """Labels the entity models learn and pre-annotate, in schema order."""
        return tuple(label.name for label in self.labels if label.pre_annotate)

    def label(self, name: str) -> LabelSpec:
        for spec in self.labels:
            if spec.name == name:
                return spec
        raise ConfigError(f"label {name!r} is not in the label schema (known: {self.label_names})")

    def without_foreign_attributes(self, span: Any) -> Any:
        """``span`` without the negation / temporality / experiencer its label does not carry (a ``Value``,
        a ``Temporal`` cue); a label the schema does not know keeps them all."""
        from dataclasses import replace

        from clinical_nlp.types import ATTRIBUTE_DEFAULTS

        spec = next((lab for lab in self.labels if lab.name == span.label), None)
        drop = [k for k in span.attributes if k in ATTRIBUTE_DEFAULTS and spec and k not in spec.attributes]
        return replace(span, attributes={k: v for k, v in span.attributes.items() if k not in drop}) if drop else span

    @property
    def safety_critical(self) -> set[str]:
        return {label.name for label in self.labels if label.safety_critical}


class Guideline(BaseModel):
    """The annotation guideline text with its schema and version stamp."""

    directory: Path
    schema_: LabelSchema = Field(alias="schema")
    text: str
    version: str

    class Config:
        allow_mutation = False
        arbitrary_types_allowed = True

    @property
    def schema(self) -> LabelSchema:  # type: ignore[override]
        return self.schema_


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse YAML: {exc}") from None


def load_label_schema(directory: Path | str | None = None) -> LabelSchema:
    """Load and validate ``label_schema.yaml`` from a guidelines directory."""
    path = Path(directory or default_guidelines_dir()) / "label_schema.yaml"
    data = _read_yaml(path)
    try:
        return LabelSchema.parse_obj(data)
    except Exception as exc:  # pydantic.ValidationError
        raise ConfigError(f"{path}: invalid label schema: {exc}") from None


def guideline_version(schema_version: str, *contents: bytes) -> str:
    """``<semver>+<12 hex of sha256 over the guideline files>``."""
    digest = hashlib.sha256()
    for blob in contents:
        digest.update(hashlib.sha256(blob).digest())
    return f"{schema_version}+{digest.hexdigest()[:12]}"


@lru_cache(maxsize=8)
def _load_guideline_cached(directory: str, mtimes: tuple[float, ...]) -> Guideline:
    root = Path(directory)
    schema = load_label_schema(root)
    schema_bytes = (root / "label_schema.yaml").read_bytes()
    md_path = root / schema.guideline
    try:
        md_bytes = md_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{md_path}: guideline named by the label schema not found") from None
    return Guideline(
        directory=root,
        schema=schema,
        text=md_bytes.decode("utf-8"),
        version=guideline_version(schema.version, md_bytes, schema_bytes),
    )


def load_guideline(directory: Path | str | None = None) -> Guideline:
    """Load the guideline and schema; the version changes whenever either file changes."""
    root = Path(directory or default_guidelines_dir()).resolve()
    # the cache key covers every file of the folder (the guideline .md too), by mtime and size
    files = sorted(root.iterdir()) if root.is_dir() else [root / "label_schema.yaml"]
    mtimes = tuple(float(f.stat().st_mtime_ns + f.stat().st_size) if f.is_file() else 0.0 for f in files)
    return _load_guideline_cached(str(root), mtimes)


class DoccanoSettings(_Strict):
    url: str = "http://127.0.0.1:8000"
    project: str = "clinical-nlp"
    #: Admin credentials come from DOCCANO_ADMIN_USER / DOCCANO_ADMIN_PASSWORD, never from here.


class ProjectConfig(_Strict):
    """Contents of a project's ``clinical-nlp.yaml`` (written by ``clinical-nlp init``)."""

    name: str
    guidelines: str = "guidelines"
    store_url: str = "sqlite:///state.db"
    doccano: DoccanoSettings = Field(default_factory=DoccanoSettings)
    models_dir: str = "models"
    reports_dir: str = "reports"
    #: Refuse to push notes that are not marked de-identified (override: --allow-phi by a PHI user).
    require_deid: bool = True


class Project(BaseModel):
    """A loaded project: its directory and configuration, with resolved paths."""

    root: Path
    config: ProjectConfig

    class Config:
        allow_mutation = False
        arbitrary_types_allowed = True

    @property
    def guidelines_dir(self) -> Path:
        path = Path(self.config.guidelines)
        return path if path.is_absolute() else self.root / path

    @property
    def store_url(self) -> str:
        url = os.environ.get("CLINICAL_NLP_STORE_URL") or self.config.store_url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url[len("sqlite:///") :]
            if rel and rel != ":memory:":
                return "sqlite:///" + str((self.root / rel).resolve())
        return url

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def guideline(self) -> Guideline:
        return load_guideline(self.guidelines_dir)


def load_project(directory: Path | str | None = None) -> Project:
    """Find ``clinical-nlp.yaml`` in ``directory`` (default: cwd, then parents)."""
    start = Path(directory or os.environ.get("CLINICAL_NLP_PROJECT") or Path.cwd()).resolve()
    for candidate in [start, *start.parents]:
        cfg_path = candidate / PROJECT_FILE
        if cfg_path.exists():
            data = _read_yaml(cfg_path) or {}
            try:
                config = ProjectConfig.parse_obj(data)
            except Exception as exc:
                raise ConfigError(f"{cfg_path}: invalid project file: {exc}") from None
            return Project(root=candidate, config=config)
        if directory is not None:
            break
    raise ConfigError(f"no {PROJECT_FILE} found in {start} or its parents; create one with 'clinical-nlp init DIR'")


def current_actor(actor: str | None = None) -> str:
    """Who is acting, as every command records it: ``actor``, else ``$CLINICAL_NLP_ACTOR``, else the OS user."""
    import getpass

    return actor or os.environ.get("CLINICAL_NLP_ACTOR") or getpass.getuser()
