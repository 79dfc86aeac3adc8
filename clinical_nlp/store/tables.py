"""Every table of the project store, declared on one ``Base`` (no registration at run time).

Tables: documents, annotations (with provenance), rounds, Doccano examples
(example id per note in each annotator's Doccano project, and the bulk imports started),
legacy Doccano links (the shared-project push before issue 18), model versions, the audit log,
the annotator registry, QA reviews (latest per item and label, plus every review
ever recorded) and the adjudication queue (latest decision per entry, plus every
decision ever recorded, so that an amended decision keeps the one it supersedes).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class Base(DeclarativeBase):
    """Declarative base shared by every table of the store."""


class _ItemKeyed:
    """Columns of the tables keyed by an item (a note id, or ``note#unit``): a surrogate id and the item."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item: Mapped[str] = mapped_column(String(200), index=True)


class DocumentRow(Base):
    __tablename__ = "documents"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    deidentified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeidRecordRow(Base):
    """What was de-identified: the sha256 of exactly the text a note holds after de-identification (or that
    a person attested free of PHI), how and by whom. A note counts as de-identified only while its text
    still has this hash: a claim in an input file, or a text changed since, does not count."""

    __tablename__ = "deid_records"
    note_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_sha256: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(500))
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    recorded_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PrivacyReviewRow(Base):
    """An item of the privacy review queue: a possible identifier the detector was unsure of, already
    replaced in the note (offsets into the de-identified text); open until a privacy officer decides."""

    __tablename__ = "privacy_reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    note_id: Mapped[str] = mapped_column(String(200), index=True)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | confirmed | rejected
    reviewer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: where the item was in the ORIGINAL note and that note's sha256 (no PHI: offsets and a hash), so a
    #: rejected item's original words can be put back from the officer's copy of the input
    orig_start: Mapped[int | None] = mapped_column(Integer, nullable=True)
    orig_end: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    restored: Mapped[bool | None] = mapped_column(Boolean, nullable=True, default=False)
    #: the surrogate that stood at the item while its original words are restored (not PHI: a made-up value)
    surrogate: Mapped[str | None] = mapped_column(String(300), nullable=True)


class AnnotationRow(_ItemKeyed, Base):
    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("item", "annotator", "round", "kind"),)
    annotator: Mapped[str] = mapped_column(String(200), index=True)
    #: "pre" (model pre-annotation), "human" (annotator), "gold" (consensus/adjudicated)
    kind: Mapped[str] = mapped_column(String(20), default="human")
    round: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[Any] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(200), default="human")
    model_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    guideline_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    edits: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    timestamp: Mapped[str] = mapped_column(String(40))
    #: links between the payload's spans (text); NULL when none (a store made before relations has no column
    #: until Store adds it)
    relations: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)


class RoundRow(Base):
    __tablename__ = "rounds"
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DoccanoLinkRow(Base):
    __tablename__ = "doccano_links"
    __table_args__ = (UniqueConstraint("project", "note_id"), UniqueConstraint("project", "example_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(200), index=True)
    note_id: Mapped[str] = mapped_column(String(200))
    example_id: Mapped[int] = mapped_column(Integer)
    #: which annotators' pre-annotations are already in place ({"alice": true})
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class _InAnnotatorProject:
    """Columns of the rows about one annotator's Doccano project: which one, on which server."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: the engine-side Doccano project name (``doccano.project``); the annotator's project derives from it
    project: Mapped[str] = mapped_column(String(200), index=True)
    annotator: Mapped[str] = mapped_column(String(200))
    server: Mapped[str] = mapped_column(String(300))
    doccano_project_id: Mapped[int] = mapped_column(Integer)


class DoccanoExampleRow(_InAnnotatorProject, Base):
    """One note in one annotator's own Doccano project, imported by the engine with her pre-annotations.

    Names the server and the Doccano project, so that a reset server or another one is noticed.
    """

    __tablename__ = "doccano_examples"
    __table_args__ = (UniqueConstraint("project", "annotator", "note_id"),)
    note_id: Mapped[str] = mapped_column(String(200))
    example_id: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DoccanoImportRow(_InAnnotatorProject, Base):
    """A bulk import started on the server, recorded before waiting for it, so a killed push waits
    for that task on the re-run instead of importing the same notes twice."""

    __tablename__ = "doccano_imports"
    task_id: Mapped[str] = mapped_column(String(200))
    note_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PullProblemRow(Base):
    """A problem found in one annotator's work on one note at pull (that row was not pulled; the rest were)."""

    __tablename__ = "pull_problems"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(200), index=True)
    note_id: Mapped[str] = mapped_column(String(200))
    annotator: Mapped[str] = mapped_column(String(200))
    problem: Mapped[str] = mapped_column(Text)
    found_at: Mapped[str] = mapped_column(String(40))
    #: "open" until a later pull of the same note and annotator succeeds ("resolved")
    status: Mapped[str] = mapped_column(String(20), default="open")


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    version: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    path: Mapped[str] = mapped_column(Text)
    parent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditRow(Base):
    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    timestamp: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50), index=True)
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AnnotatorRow(Base):
    __tablename__ = "annotators"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), default="annotator")
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    specialty: Mapped[str | None] = mapped_column(String(200), nullable=True)
    license_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    hipaa_training: Mapped[str | None] = mapped_column(String(20), nullable=True)  # ISO date
    guideline_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    phi_access: Mapped[bool] = mapped_column(Boolean, default=False)
    extra: Mapped[list[str]] = mapped_column(JSON, default=list)


class QAReviewRow(_ItemKeyed, Base):
    __tablename__ = "qa_reviews"
    __table_args__ = (UniqueConstraint("item", "label"),)
    label: Mapped[str] = mapped_column(String(100))
    expert: Mapped[str] = mapped_column(String(200))
    timestamp: Mapped[str] = mapped_column(String(40))


class QAReviewEventRow(_ItemKeyed, Base):
    """Every QA review recorded, in order; the newest per (item, label) is the one in ``qa_reviews``."""

    __tablename__ = "qa_review_events"
    label: Mapped[str] = mapped_column(String(100))
    expert: Mapped[str] = mapped_column(String(200))
    verdict: Mapped[str] = mapped_column(String(20), default="confirmed")
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    timestamp: Mapped[str] = mapped_column(String(40))


class AdjudicationDecisionRow(_ItemKeyed, Base):
    """Every adjudication decision recorded; ``supersedes`` names the decision it amended."""

    __tablename__ = "adjudication_decisions"
    queue_id: Mapped[int] = mapped_column(Integer, index=True)
    unit: Mapped[str] = mapped_column(String(200))
    decision: Mapped[Any] = mapped_column(JSON, nullable=True)
    expert: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    guideline_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    supersedes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    decided_at: Mapped[str] = mapped_column(String(40))


class AdjudicationRow(_ItemKeyed, Base):
    __tablename__ = "adjudication_queue"
    __table_args__ = (UniqueConstraint("item", "unit"),)
    unit: Mapped[str] = mapped_column(String(200))
    modality: Mapped[str] = mapped_column(String(20))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    expert: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    decision: Mapped[Any] = mapped_column(JSON, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[str] = mapped_column(String(40))
    decided_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
