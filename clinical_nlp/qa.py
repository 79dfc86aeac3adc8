"""QA coverage policy (expert review rates per label) and guideline drift.

Policy (from ``guidelines/label_schema.yaml``): a ``safety_critical`` label needs
expert review of 100% of the items carrying it; other labels need review of a
deterministic sample of items at the label's ``review_rate`` (an item is sampled
when sha256("<seed>:<label>:<item>") falls below the rate).

An item+label counts as expert-reviewed when the store holds a ``kind="gold"``
annotation of the item by a registered annotator with role expert/admin (an
adjudicated annotation), or a review record (:func:`record_review`, table
``qa_reviews``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from clinical_nlp.config import LabelSchema, load_label_schema
from clinical_nlp.errors import PolicyError
from clinical_nlp.store import QAReviewEventRow, QAReviewRow, Store

DEFAULT_SEED = "clinical-nlp-qa"


def sampled(item: str, label: str, rate: float, *, seed: str = DEFAULT_SEED) -> bool:
    """Deterministic sampling: True when this item is in the label's review sample."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    h = int.from_bytes(hashlib.sha256(f"{seed}:{label}:{item}".encode()).digest()[:8], "big")
    return h / 2**64 < rate


#: What a QA review can conclude.
VERDICTS = ("confirmed", "corrected", "rejected")


def record_review(
    store: Store,
    item: str,
    label: str,
    expert: str,
    *,
    verdict: str = "confirmed",
    comment: str | None = None,
    schema: LabelSchema | None = None,
    guideline_version: str | None = None,
) -> None:
    """Record that ``expert`` (a registered expert qualified for ``label``) reviewed ``label`` on ``item``.

    The item must be in the store and carry ``label`` in one of its annotations; a ``corrected`` or
    ``rejected`` verdict needs a gold decision by ``expert`` on the item (her correction). A later review
    of the same item and label supersedes this one; every review is kept (``qa_review_events``)
    and audited. Nothing is written when a check fails.
    """
    from clinical_nlp.audit import AuditLog
    from clinical_nlp.errors import InputFormatError
    from clinical_nlp.services.validation import require_person

    schema = schema or load_label_schema()
    if verdict not in VERDICTS:
        raise InputFormatError(f"QA review verdict {verdict!r} is not one of {VERDICTS}")
    if label not in schema.label_names:
        raise InputFormatError(
            f"QA review of {item!r}: label {label!r} is not in the label schema "
            f"(known: {', '.join(schema.label_names)})"
        )
    carried = set().union(*(_labels_of(a.payload) for a in store.annotations(item=item)))
    if not carried and not store.notes([item]):
        raise InputFormatError(f"QA review: item {item!r} is not in the store")
    if label not in carried:
        raise InputFormatError(f"QA review of {item!r}: no annotation of the item carries {label!r}")
    require_person(
        store,
        expert,
        action="QA review",
        expert=True,
        labels=[label],
        schema=schema,
        guideline_version=guideline_version,
    )
    if verdict != "confirmed" and not store.annotations(kind="gold", item=item, annotator=expert):
        raise PolicyError(
            f"QA review of {item!r}: a {verdict!r} review needs {expert}'s correction in the gold, or the item "
            f"would count as reviewed with the error still in it: record it first ('clinical-nlp adjudicate "
            "decide'), or review in Doccano ('qa push' / 'qa pull' record both)"
        )
    ts = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    with store.session() as s:
        row = s.scalars(select(QAReviewRow).where(QAReviewRow.item == item, QAReviewRow.label == label)).first()
        previous = None if row is None else {"expert": row.expert, "timestamp": row.timestamp}
        if row is None:
            s.add(QAReviewRow(item=item, label=label, expert=expert, timestamp=ts))
        else:
            row.expert, row.timestamp = expert, ts
        s.add(QAReviewEventRow(item=item, label=label, expert=expert, verdict=verdict, comment=comment, timestamp=ts))
    AuditLog(store).append(
        "qa_review",
        actor=expert,
        details={"item": item, "label": label, "verdict": verdict, "comment": comment, "supersedes": previous},
    )


def review_history(store: Store, item: str | None = None) -> list[dict[str, Any]]:
    """Every QA review recorded (superseded ones included), oldest first."""
    return store.history(QAReviewEventRow, ("item", "label", "expert", "verdict", "comment", "timestamp"), item=item)


@dataclass
class LabelCoverage:
    label: str
    review_rate: float
    safety_critical: bool
    items: int
    required: list[str]
    reviewed: list[str]

    @property
    def missing(self) -> list[str]:
        done = set(self.reviewed)
        return [i for i in self.required if i not in done]

    @property
    def met(self) -> bool:
        return not self.missing

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "review_rate": self.review_rate,
            "safety_critical": self.safety_critical,
            "items": self.items,
            "required": len(self.required),
            "reviewed": len(self.reviewed),
            "coverage": (1.0 if not self.required else 1 - len(self.missing) / len(self.required)),
            "met": self.met,
            "missing": self.missing,
        }


@dataclass
class QAReport:
    labels: dict[str, LabelCoverage] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return all(c.met for c in self.labels.values())

    def unmet(self) -> dict[str, list[str]]:
        return {name: c.missing for name, c in self.labels.items() if not c.met}

    def as_dict(self) -> dict[str, Any]:
        return {"met": self.met, "labels": {k: v.as_dict() for k, v in self.labels.items()}}


def _labels_of(payload: Any) -> set[str]:
    if isinstance(payload, (tuple, list)):
        out = set()
        for s in payload:
            lab = getattr(s, "label", None) if not isinstance(s, dict) else s.get("label")
            if lab:
                out.add(str(lab))
        return out
    if isinstance(payload, dict) and "label" in payload:
        return {str(payload["label"])}
    if isinstance(payload, str):
        return {payload}
    return set()


def check_qa_coverage(
    store: Store, schema: LabelSchema | None = None, *, labels: Iterable[str] | None = None, seed: str = DEFAULT_SEED
) -> QAReport:
    """Which items each label's policy requires to be expert-reviewed, and which are."""
    from clinical_nlp.annotators import Registry

    schema = schema or load_label_schema()
    wanted = set(labels) if labels is not None else set(schema.label_names)
    experts = {a.name for a in Registry(store).list() if a.is_expert}
    items_by_label: dict[str, set[str]] = {}
    reviewed: dict[str, set[str]] = {}
    for ann in store.annotations():
        labs = _labels_of(ann.payload)
        for lab in labs:
            items_by_label.setdefault(lab, set()).add(ann.item)
    for ann in store.annotations(kind="gold"):
        if ann.annotator in experts:
            # an adjudicated gold annotation reviews every label the item carries
            for lab, items in items_by_label.items():
                if ann.item in items:
                    reviewed.setdefault(lab, set()).add(ann.item)
    with store.session() as s:
        for r in s.scalars(select(QAReviewRow)):
            reviewed.setdefault(r.label, set()).add(r.item)
    report = QAReport()
    for spec in schema.labels:
        if spec.name not in wanted:
            continue
        rate = 1.0 if spec.safety_critical else spec.review_rate
        label_items = sorted(items_by_label.get(spec.name, set()))
        required = [i for i in label_items if sampled(i, spec.name, rate, seed=seed)]
        done = sorted(set(required) & reviewed.get(spec.name, set()))
        report.labels[spec.name] = LabelCoverage(
            spec.name, rate, spec.safety_critical, len(label_items), required, done
        )
    return report


def require_qa_coverage(
    store: Store, labels: Iterable[str] | None = None, schema: LabelSchema | None = None, *, seed: str = DEFAULT_SEED
) -> QAReport:
    """Raise :class:`PolicyError` listing the items still to review when a label's policy is unmet."""
    report = check_qa_coverage(store, schema, labels=labels, seed=seed)
    raise_unmet(report.unmet())
    return report


def unreviewed(
    store: Store, labelled: Iterable[tuple[str, str]], schema: LabelSchema | None = None, *, seed: str = DEFAULT_SEED
) -> dict[str, list[str]]:
    """``{label: [item, ...]}`` of the (item, label) pairs the policy requires reviewed that are not, for
    items that may not be in the store (an exported file): reviews and expert gold come from the store."""
    from clinical_nlp.annotators import Registry

    schema = schema or load_label_schema()
    experts = {a.name for a in Registry(store).list() if a.is_expert}
    adjudicated = {a.item for a in store.annotations(kind="gold") if a.annotator in experts}
    with store.session() as s:
        reviewed = {(r.item, r.label) for r in s.scalars(select(QAReviewRow))}
    out: dict[str, list[str]] = {}
    known = set(schema.label_names)
    for item, label in sorted(set(labelled)):
        if label not in known:
            continue
        spec = schema.label(label)
        rate = 1.0 if spec.safety_critical else spec.review_rate
        if sampled(item, label, rate, seed=seed) and item not in adjudicated and (item, label) not in reviewed:
            out.setdefault(label, []).append(item)
    return out


def qa_todo(
    store: Store, schema: LabelSchema | None = None, *, labels: Iterable[str] | None = None, seed: str = DEFAULT_SEED
) -> list[dict[str, Any]]:
    """Every (item, label) review the policy requires and nobody has done, item by item: ``item``,
    ``label``, ``safety_critical``, ``review_rate`` and ``why`` (all of a safety-critical label's items,
    or the item is in the label's deterministic sample)."""
    report = check_qa_coverage(store, schema, labels=labels, seed=seed)
    out = []
    for name, cov in report.labels.items():
        why = "safety-critical: every item" if cov.safety_critical else f"in the {cov.review_rate:.0%} review sample"
        out += [
            {"item": i, "label": name, "safety_critical": cov.safety_critical, "review_rate": cov.review_rate,
             "why": why}
            for i in cov.missing
        ]  # fmt: skip
    return sorted(out, key=lambda r: (r["item"], r["label"]))


def raise_unmet(unmet: dict[str, list[str]]) -> None:
    """Raise :class:`PolicyError` listing the items still to review per label (nothing when ``unmet`` is empty)."""
    if not unmet:
        return
    parts = []
    for label, items in sorted(unmet.items()):
        shown = ", ".join(items[:20]) + (f" … (+{len(items) - 20} more)" if len(items) > 20 else "")
        parts.append(f"{label}: {len(items)} item(s) still to review: {shown}")
    raise PolicyError("QA review policy unmet; " + "; ".join(parts))


@dataclass
class DriftReport:
    current: str
    by_version: dict[str, int]
    stale: list[dict[str, Any]]

    @property
    def drifted(self) -> bool:
        return bool(self.stale)

    def as_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "by_version": self.by_version,
            "stale_count": len(self.stale),
            "stale": self.stale,
        }


def guideline_drift(store: Store, current: str | None = None) -> DriftReport:
    """Annotations made under a guideline version other than ``current`` (default: the
    repository guideline's version). Annotations without a version count as stale."""
    from clinical_nlp.config import load_guideline

    current = current or load_guideline().version
    by_version: dict[str, int] = {}
    stale = []
    for ann in store.annotations():
        v = ann.guideline_version or "unknown"
        by_version[v] = by_version.get(v, 0) + 1
        if v != current:
            stale.append({"item": ann.item, "annotator": ann.annotator, "round": ann.round, "version": v})
    return DriftReport(current, by_version, stale)
