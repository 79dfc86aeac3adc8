"""Project state store: SQLite by default (SQLAlchemy), PostgreSQL by URL.

``tables`` declares every table on one ``Base``; ``store`` is the access layer.
"""

from clinical_nlp.store.store import (
    Store,
    annotation_key,
    row_hash,
    shown_url,
    spans_from_json,
    spans_to_json,
    text_sha256,
)
from clinical_nlp.store.tables import (
    AdjudicationDecisionRow,
    AdjudicationRow,
    AnnotationRow,
    AnnotatorRow,
    AuditRow,
    Base,
    DeidRecordRow,
    DoccanoExampleRow,
    DoccanoImportRow,
    DoccanoLinkRow,
    DocumentRow,
    ModelVersionRow,
    PrivacyReviewRow,
    PullProblemRow,
    QAReviewEventRow,
    QAReviewRow,
    RoundRow,
    utcnow,
)

__all__ = [
    "shown_url",
    "AdjudicationDecisionRow",
    "AdjudicationRow",
    "AnnotationRow",
    "AnnotatorRow",
    "AuditRow",
    "Base",
    "DoccanoExampleRow",
    "DeidRecordRow",
    "DoccanoImportRow",
    "DoccanoLinkRow",
    "DocumentRow",
    "ModelVersionRow",
    "PrivacyReviewRow",
    "PullProblemRow",
    "QAReviewEventRow",
    "QAReviewRow",
    "RoundRow",
    "Store",
    "annotation_key",
    "row_hash",
    "spans_from_json",
    "spans_to_json",
    "text_sha256",
    "utcnow",
]
