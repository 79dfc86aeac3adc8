"""Project state store: SQLite by default (SQLAlchemy), PostgreSQL by URL.

``tables`` declares every table on one ``Base``; ``store`` is the access layer.
"""

from clinical_nlp.store.store import Store, spans_from_json, spans_to_json
from clinical_nlp.store.tables import (
    AdjudicationRow,
    AnnotationRow,
    AnnotatorRow,
    AuditRow,
    Base,
    DoccanoLinkRow,
    DocumentRow,
    ModelVersionRow,
    QAReviewRow,
    RoundRow,
    utcnow,
)

__all__ = [
    "AdjudicationRow",
    "AnnotationRow",
    "AnnotatorRow",
    "AuditRow",
    "Base",
    "DoccanoLinkRow",
    "DocumentRow",
    "ModelVersionRow",
    "QAReviewRow",
    "RoundRow",
    "Store",
    "spans_from_json",
    "spans_to_json",
    "utcnow",
]
