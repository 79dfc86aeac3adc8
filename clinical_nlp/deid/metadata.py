"""De-identification of a note's metadata, so that it does not undo the text's.

Every field but the note id goes through one rule per kind of value:

* the patient id and identifier-like values (UUIDs, ``urn:uuid:`` and ``Resource/id`` references)
  become keyed pseudonyms (``pt-…``, ``ref-…``): stable for one key, not reversible without it;
* values under keys naming an identifier (``mrn``, ``ssn``, ``insurance_id``, ``phone``, ``email``,
  ``zip``, ``city`` …; HIPAA Safe Harbor's identifiers) become ``id-…`` pseudonyms, numbers too,
  and keys naming a person (``patient_name``, ``first_name``, ``next_of_kin`` …) ``person-…``;
* an age over 89 (under a key with the word ``age``) becomes ``"90+"``, as in the text;
* file names and paths (``source``, ``source_bundle``, ``filename`` …: FHIR bundle files are named
  after the patient) become ``src-…`` pseudonyms, people (``author``, ``practitioner`` …) ``person-…``;
* dates and date-times are shifted with the patient's shift, the one applied to the text;
* other text is replaced where it holds a PHI string found in the note (its surrogate) or a
  synthetic-format name (``Bob965``), and is run through the detector when it has letters;
* other numbers and booleans are kept; a string of 7 digits or more without letters (a phone or
  record number under a key no rule names) becomes an ``id-…`` pseudonym; the input's own
  ``deidentified`` claim is dropped.
"""

from __future__ import annotations

import datetime as _dt
import json
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

#: words of a key that name an identifier (compared with the key's words: "patientMRN" → patient, mrn)
ID_WORDS = frozenset(
    {"mrn", "ssn", "account", "acct", "insurance", "member", "policy", "beneficiary", "license", "licence",
     "certificate", "serial", "vin", "plate", "phone", "telephone", "tel", "fax", "mobile", "email",
     "url", "ipaddress", "address", "street", "zip", "zipcode", "postal", "postcode", "city", "county", "town",
     "npi", "mbi", "passport"}
)  # fmt: skip
#: pairs of key words that name an identifier only together
ID_PAIRS = frozenset({("medical", "record"), ("record", "number"), ("social", "security"), ("health", "plan")})
#: words of a key that name a person together with "name" ("patient_name", "first_name")
NAME_WORDS = frozenset(
    {"patient", "pt", "first", "last", "given", "family", "full", "middle", "maiden", "person", "contact",
     "guardian", "spouse", "mother", "father", "kin", "relative", "proxy"}
)  # fmt: skip
#: words of a key that name a person alone ("next_of_kin", "signed_by", "attending")
PERSON_WORDS = frozenset(
    {"surname", "firstname", "lastname", "forename", "givenname", "nok", "kin", "relative", "proxy", "guardian",
     "spouse", "attending", "physician", "doctor", "nurse", "surgeon", "signer", "signed", "dictated",
     "transcriptionist", "author", "clinician", "practitioner", "performer", "attester", "provider"}
)  # fmt: skip

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
        else:
            out[key] = _field(key, value, pseudonym, shift_days, surrogates, detect)
    return out


def _field(key: str, value: Any, pseudonym, shift_days: int, surrogates: Mapping[str, str], detect) -> Any:
    """One field by its key's rule (files, people, identifiers, ages), else by its value's kind."""
    words = key_words(key)
    if value is None or isinstance(value, bool):
        return value
    as_text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if key in FILE_KEYS and isinstance(value, str):
        return pseudonym("src", value)
    if key in PERSON_KEYS or _names_a_person(words):
        return pseudonym("person", as_text)
    if _names_an_identifier(words):
        return pseudonym("id", as_text)
    if "age" in words and _over_89(value):
        return "90+"
    return _value(value, pseudonym, shift_days, surrogates, detect)


def key_words(key: str) -> list[str]:
    """The lower-case words of a metadata key: ``"patientMRN"`` → patient, mrn; ``"zip_code"`` → zip, code."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", key))
    return re.findall(r"[a-z]+|\d+", spaced.lower())


def _names_a_person(words: list[str]) -> bool:
    return (
        bool(PERSON_WORDS.intersection(words))
        or words == ["name"]
        or ("name" in words and bool(NAME_WORDS.intersection(words)))
    )


def _names_an_identifier(words: list[str]) -> bool:
    return bool(ID_WORDS.intersection(words)) or any(pair in ID_PAIRS for pair in zip(words, words[1:], strict=False))


def _over_89(value: Any) -> bool:
    try:
        return float(value) > 89
    except (TypeError, ValueError):
        return False


def _value(value: Any, pseudonym, shift_days: int, surrogates: Mapping[str, str], detect) -> Any:
    if isinstance(value, list):
        return [_value(v, pseudonym, shift_days, surrogates, detect) for v in value]
    if isinstance(value, dict):
        return {k: _field(str(k), v, pseudonym, shift_days, surrogates, detect) for k, v in value.items()}
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
    if not re.search(r"[A-Za-z]", out) and len(re.findall(r"\d", out)) >= 7:
        return pseudonym("id", value)  # a phone, record or account number under a key no rule names
    if detect is not None and re.search(r"[A-Za-z]{2}", out):
        out = detect(out)
    return out
