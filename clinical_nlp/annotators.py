"""Annotator registry: roles, credentials and qualifications; assignment policy; PHI access.

The label schema's ``requires`` list names the qualifications an annotator needs
for a label; the ``qualifications`` map in the schema documents each name. Known
qualification names and how an annotator satisfies them:

* ``guideline_training``: trained on the CURRENT guideline version (or any version
  when the guideline version is not given to :func:`check_assignment`);
* ``clinical_license``: has a licence id; ``hipaa_training``: has a HIPAA training
  date within the last year; ``phi_access``: the flag is set;
* anything else: listed in the annotator's ``extra`` qualifications.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from clinical_nlp.config import LabelSchema, load_label_schema
from clinical_nlp.errors import ConfigError, PolicyError
from clinical_nlp.store import AnnotatorRow, Store

ANNOTATOR_ROLES = ("annotator", "expert", "admin")
#: a Doccano (Django) user name: letters, digits and @ . + - _, at most 150 characters
_USER_NAME = re.compile(r"[\w.@+-]{1,150}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


@dataclass(frozen=True)
class Annotator:
    name: str
    role: str = "annotator"
    email: str | None = None
    specialty: str | None = None
    license_id: str | None = None
    hipaa_training: str | None = None
    guideline_version: str | None = None
    phi_access: bool = False
    extra: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ConfigError("annotator name must not be empty")
        if self.role not in ANNOTATOR_ROLES:
            raise ConfigError(f"annotator {self.name!r}: role {self.role!r} is not one of {ANNOTATOR_ROLES}")
        if self.hipaa_training is not None:
            try:
                _dt.date.fromisoformat(self.hipaa_training)
            except ValueError:
                raise ConfigError(
                    f"annotator {self.name!r}: HIPAA training date {self.hipaa_training!r} is not YYYY-MM-DD"
                ) from None

    def check_new(self) -> None:
        """Checks on a record being registered (records already stored are read as they are)."""
        if not _USER_NAME.fullmatch(self.name):
            raise ConfigError(
                f"annotator name {self.name!r} cannot be a Doccano user name (letters, digits and @ . + - _ only, "
                "at most 150 characters)"
            )
        if self.email is not None and not _EMAIL.fullmatch(self.email):
            raise ConfigError(f"annotator {self.name!r}: e-mail {self.email!r} is not an address")
        if self.hipaa_training is not None and _dt.date.fromisoformat(self.hipaa_training) > _dt.date.today():
            raise ConfigError(
                f"annotator {self.name!r}: HIPAA training date {self.hipaa_training} is in the future; "
                "record it once the training is done"
            )

    @property
    def is_expert(self) -> bool:
        return self.role in ("expert", "admin")

    def qualifications(self, *, guideline_version: str | None = None, today: _dt.date | None = None) -> set[str]:
        """The qualification names this annotator currently satisfies."""
        quals = set(self.extra)
        if self.guideline_version and (guideline_version is None or self.guideline_version == guideline_version):
            quals.add("guideline_training")
        if self.license_id:
            quals.add("clinical_license")
        if self.hipaa_training:
            age = (today or _dt.date.today()) - _dt.date.fromisoformat(self.hipaa_training)
            if age.days <= 366:
                quals.add("hipaa_training")
        if self.phi_access:
            quals.add("phi_access")
        if self.is_expert:
            quals.add("expert")
        return quals

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["extra"] = list(self.extra)
        return d


def _from_row(r: AnnotatorRow) -> Annotator:
    return Annotator(
        r.name,
        r.role,
        r.email,
        r.specialty,
        r.license_id,
        r.hipaa_training,
        r.guideline_version,
        bool(r.phi_access),
        tuple(r.extra or ()),
    )


class Registry:
    """Annotators stored in the project store.

    Example:
        >>> reg = Registry(Store("sqlite:///:memory:"))
        >>> reg.add(Annotator("alice", role="expert", license_id="MD-1")).role
        'expert'
    """

    def __init__(self, store: Store):
        self.store = store

    def add(self, annotator: Annotator, *, actor: str = "admin", replace: bool = False) -> Annotator:
        from clinical_nlp.audit import AuditLog

        annotator.check_new()
        with self.store.session() as s:
            row = s.get(AnnotatorRow, annotator.name)
            if row is not None and not replace:
                raise ConfigError(f"annotator {annotator.name!r} already exists (use replace/--update)")
            if row is None:
                row = AnnotatorRow(name=annotator.name)
                s.add(row)
            for k, v in annotator.to_dict().items():
                if k != "name":
                    setattr(row, k, v)
        AuditLog(self.store).append(
            "annotator", actor=actor, details={"op": "update" if replace else "add", **annotator.to_dict()}
        )
        return annotator

    def get(self, name: str) -> Annotator:
        with self.store.session() as s:
            row = s.get(AnnotatorRow, name)
            if row is None:
                raise ConfigError(f"annotator {name!r} is not in the registry")
            return _from_row(row)

    def find(self, name: str) -> Annotator | None:
        try:
            return self.get(name)
        except ConfigError:
            return None

    def list(self) -> list[Annotator]:
        with self.store.session() as s:
            return [_from_row(r) for r in s.scalars(select(AnnotatorRow).order_by(AnnotatorRow.name))]


def missing_qualifications(
    annotator: Annotator,
    labels: Iterable[str],
    schema: LabelSchema | None = None,
    *,
    guideline_version: str | None = None,
) -> dict[str, list[str]]:
    """``{label: [missing qualification, ...]}`` for the labels the annotator may not annotate."""
    schema = schema or load_label_schema()
    have = annotator.qualifications(guideline_version=guideline_version)
    out: dict[str, list[str]] = {}
    for label in labels:
        need = schema.label(label).requires
        miss = [q for q in need if q not in have]
        if miss:
            out[label] = miss
    return out


def check_assignment(
    registry: Registry,
    annotator: str,
    labels: Iterable[str],
    schema: LabelSchema | None = None,
    *,
    guideline_version: str | None = None,
) -> Annotator:
    """Raise :class:`PolicyError` naming missing qualifications when ``annotator`` may not
    annotate ``labels``; returns the annotator otherwise."""
    person = registry.find(annotator)
    if person is None:
        raise PolicyError(f"annotator {annotator!r} is not registered (clinical-nlp annotators add)")
    missing = missing_qualifications(person, labels, schema, guideline_version=guideline_version)
    if missing:
        detail = "; ".join(f"{lab}: {', '.join(q)}" for lab, q in sorted(missing.items()))
        raise PolicyError(f"annotator {annotator!r} lacks qualifications for {detail}")
    return person


def unknown_guideline_version(store: Store, version: str | None, current: str) -> str | None:
    """A warning when ``version`` is neither the current guideline nor one any annotation was made under
    (a typo would leave the person without ``guideline_training``, and every push would refuse her)."""
    if version is None or version == current:
        return None
    from sqlalchemy import select

    from clinical_nlp.store import AnnotationRow

    with store.session() as s:  # the versions only, not every annotation's spans
        if s.scalars(select(AnnotationRow.id).where(AnnotationRow.guideline_version == version).limit(1)).first():
            return None
    return (
        f"warning: guideline version {version!r} is not the current one ({current}) nor one any annotation "
        "was made under: she gets no guideline_training for the current guideline"
    )


def has_phi_access(store: Store, actor: str) -> bool:
    """True when ``actor`` is registered with the phi_access flag (hook for Doccano push)."""
    person = Registry(store).find(actor)
    return bool(person and person.phi_access)
