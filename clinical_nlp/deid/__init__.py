"""De-identification: PHI detection, consistent surrogates, offset maps (see core.py)."""

from clinical_nlp.deid.core import (  # noqa: F401
    LABELS,
    METHOD,
    DeidResult,
    Detector,
    PHISpan,
    Replacement,
    SurrogateMaker,
    deidentify_rows,
    map_span_to_deid,
    map_span_to_original,
)
from clinical_nlp.deid.pipeline import deidentify_file  # noqa: F401
