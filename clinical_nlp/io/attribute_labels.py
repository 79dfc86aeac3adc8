"""Assertion attribute values as span label names, the one encoding Doccano projects and files share.

Doccano has no span attributes, so each non-default value is an extra span label on exactly the
entity's offsets, with a short name that fits the annotation view's label chip (``NEG``, ``POSS``,
``HIST``, ``HYPO``, ``FAM``, ``OTHER``); the long meaning goes into the project's guideline page
(:func:`legend_markdown`). Values without a short name (a schema's own, or NegEx's
``temporality:not particular``) keep the long form ``attribute:value``, which is also read for
projects and files written before the short names.

Example:
    >>> attribute_label("negation", "negated"), parse_attribute_label("HIST")
    ('NEG', ('temporality', 'historical'))
    >>> parse_attribute_label("negation:negated"), parse_attribute_label("Condition")
    (('negation', 'negated'), None)
"""

from __future__ import annotations

from clinical_nlp.types import ATTRIBUTE_VALUES

LONG_FORM_SEP = ":"

#: (attribute, value) -> (short label, what it means for the annotator)
SHORT_LABELS: dict[tuple[str, str], tuple[str, str]] = {
    ("negation", "negated"): ("NEG", 'negated: the finding is absent ("no fever", "denies pain")'),
    ("negation", "possible"): ("POSS", 'possible: uncertain or suspected ("possible pneumonia", "r/o MI")'),
    ("temporality", "historical"): ("HIST", 'historical: in the past, not current ("history of MI")'),
    ("temporality", "hypothetical"): (
        "HYPO",
        'hypothetical: may happen, conditional or a risk ("return if chest pain")',
    ),
    ("experiencer", "family"): ("FAM", "family: a relative's, not the patient's (\"mother had cancer\")"),
    ("experiencer", "other"): ("OTHER", "other: someone else's, neither the patient nor a relative"),
}
_BY_SHORT = {short: pair for pair, (short, _) in SHORT_LABELS.items()}


def attribute_label(name: str, value: str) -> str:
    """The span label of an attribute value: its short name, else ``attribute:value``."""
    known = SHORT_LABELS.get((name, value))
    return known[0] if known else f"{name}{LONG_FORM_SEP}{value}"


def parse_attribute_label(label: str) -> tuple[str, str] | None:
    """``(attribute, value)`` for an attribute label (short or long form), else ``None``."""
    if label in _BY_SHORT:
        return _BY_SHORT[label]
    name, sep, value = label.partition(LONG_FORM_SEP)
    if sep and name in ATTRIBUTE_VALUES:
        return name, value
    return None


def meaning(name: str, value: str) -> str:
    """The long description of an attribute value, for the guideline legend."""
    known = SHORT_LABELS.get((name, value))
    return known[1] if known else f"{name}: {value}"


def legend_markdown(pairs: list[tuple[str, str]]) -> str:
    """A markdown table of the attribute labels (short name, attribute, meaning) for the guideline page."""
    lines = [
        "## Attribute labels in this project",
        "",
        "Put the attribute label on exactly the same text as the entity; no attribute label means the "
        "default (affirmed, recent, patient).",
        "",
        "| label | attribute | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{attribute_label(a, v)}` | {a} | {meaning(a, v)} |" for a, v in pairs]
    return "\n".join(lines) + "\n"
