"""De-identification of a note's metadata, so that it does not undo the text's.

Every field but the note id goes through one rule per kind of value:

* the patient id and identifier-like values (UUIDs, ``urn:uuid:`` and ``Resource/id`` references)
  become keyed pseudonyms (``pt-…``, ``ref-…``): stable for one key, not reversible without it;
* file names and paths (``source``, ``source_bundle``, ``filename`` …: FHIR bundle files are named
  after the patient) become ``src-…`` pseudonyms, people (``author``, ``practitioner`` …) ``person-…``;
* dates and date-times are shifted with the patient's shift, the one applied to the text;
* other text is replaced where it holds a PHI string found in the note (its surrogate) or a
  synthetic-format name (``Bob965``), and is run through the detector when it has letters;
* numbers and booleans are kept; the input's own ``deidentified`` claim is dropped.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from clinical_nlp.deid.shield import digit_names

#: keys whose value names a file (and may hold the patient's name)
FILE_KEYS = frozenset({"source", "source_bundle", "source_file", "file", "filename", "file_name", "path"})
#: keys whose value is a person (the note's author, the clinician): replaced whole by a pseudonym
PERSON_KEYS = frozenset({"author", "authors", "practitioner", "performer", "attester", "clinician", "provider"})
#: keys the pipeline writes itself or that are not metadata
DROPPED = frozenset({"deidentified", "deid_method", "offset_map", "privacy_review", "text", "spans", "relations"})

_UUID = re.compile(r"(?:urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9.\-]{1,64}$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(.*)$")


def deidentify_metadata(
    meta: Mapping[str, Any],
    *,
    patient: str,
    pseudonym: Callable[[str, str], str],
    shift_days: int,
    surrogates: Mapping[str, str],
    detect: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """The metadata of one note, de-identified (see the module docstring). ``pseudonym(kind, value)``
    and ``shift_days`` come from the run's keyed surrogate maker; ``surrogates`` maps the PHI strings
    of the note's text to their replacements; ``detect`` de-identifies free text (the detector)."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if key in DROPPED:
            continue
        if key == "id":
            out[key] = value
        elif key == "patient":
            out[key] = None if value is None else pseudonym("pt", str(value))
        elif key in FILE_KEYS and isinstance(value, str):
            out[key] = pseudonym("src", value)
        elif key in PERSON_KEYS and value is not None:
            out[key] = pseudonym("person", str(value))
        else:
            out[key] = _value(value, pseudonym, shift_days, surrogates, detect)
    return out


def _value(value: Any, pseudonym, shift_days: int, surrogates: Mapping[str, str], detect) -> Any:
    if isinstance(value, list):
        return [_value(v, pseudonym, shift_days, surrogates, detect) for v in value]
    if isinstance(value, dict):
        return {k: _value(v, pseudonym, shift_days, surrogates, detect) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    s = value.strip()
    if _UUID.fullmatch(s) or _REFERENCE.match(s) or _UUID.search(s) and s.startswith("urn:"):
        return pseudonym("ref", s)
    m = _DATE.match(s)
    if m:
        try:
            day = _dt.date(int(m[1]), int(m[2]), int(m[3])) + _dt.timedelta(days=shift_days)
            return day.isoformat() + m[4]
        except ValueError:
            return "[DATE]"
    out = value
    for original in sorted(surrogates, key=len, reverse=True):
        if len(original) > 1:
            out = re.sub(rf"(?<!\w){re.escape(original)}(?!\w)", surrogates[original], out, flags=re.I)
    for a, b in sorted(digit_names(out), reverse=True):
        out = out[:a] + "[NAME]" + out[b:]
    if detect is not None and re.search(r"[A-Za-z]{2}", out):
        out = detect(out)
    return out
