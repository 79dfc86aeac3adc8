"""A preview page of pre-annotations before they are pushed: spaCy's displaCy renders the spans of a
sample of notes, each span labelled with its entity label, its non-default attributes (the Doccano
short names: NEG, HIST, FAM …) and its score, in the label schema's colours.

Example:
    >>> rows = [{"id": "n1", "text": "No fever.", "spans": [{"start": 3, "end": 8, "label": "Condition",
    ...          "negation": "negated", "score": 0.91}]}]
    >>> "Condition NEG 0.91" in preview_html(rows, n=1)
    True
"""

from __future__ import annotations

import html
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clinical_nlp.config import LabelSchema, load_label_schema
from clinical_nlp.io.attribute_labels import attribute_label
from clinical_nlp.types import ATTRIBUTE_DEFAULTS


def _label(span: Mapping[str, Any]) -> str:
    attrs = [
        attribute_label(a, str(span[a]))
        for a in ATTRIBUTE_DEFAULTS
        if span.get(a) not in (None, ATTRIBUTE_DEFAULTS[a]) and span.get("label") != "Temporal"
    ]
    score = f" {float(span['score']):.2f}" if span.get("score") is not None else ""
    return " ".join([str(span["label"]), *attrs]) + score


def preview_html(rows: Sequence[Mapping[str, Any]], *, n: int, seed: int = 0, schema: LabelSchema | None = None) -> str:
    """The HTML page for ``n`` notes sampled (reproducibly, by ``seed``) from pre-annotation rows."""
    from spacy import displacy

    schema = schema or load_label_schema()
    picked = list(rows) if len(rows) <= n else random.Random(seed).sample(list(rows), n)
    base = {lab.name: lab.color for lab in schema.labels}
    docs: list[dict[str, Any]] = []
    colors: dict[str, str] = {}
    for row in picked:
        ents: list[dict[str, Any]] = []
        for s in sorted(row.get("spans") or [], key=lambda s: (s["start"], s["end"])):
            if ents and s["start"] < ents[-1]["end"]:  # displaCy draws no overlaps: the first span stays
                continue
            label = _label(s)
            colors[label] = base.get(str(s["label"]), "#dddddd")
            ents.append({"start": int(s["start"]), "end": int(s["end"]), "label": label})
        docs.append({"text": str(row["text"]), "ents": ents, "title": html.escape(str(row["id"]))})
    body = displacy.render(docs, style="ent", manual=True, page=False, options={"colors": colors})
    legend = ", ".join(f"{attribute_label(a, v)} = {a} {v}" for a, vs in _attribute_values().items() for v in vs)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Pre-annotation preview</title></head>"
        f"<body style='font-family: sans-serif; margin: 2em'><h1>Pre-annotation preview</h1>"
        f"<p>{len(picked)} of {len(rows)} notes. Each span: label, attributes ({html.escape(legend)}), score. "
        "Overlapping spans: only the first is drawn.</p>"
        f"{body}</body></html>"
    )


def _attribute_values() -> dict[str, list[str]]:
    from clinical_nlp.types import ATTRIBUTE_VALUES

    return {a: [v for v in vs if v != ATTRIBUTE_DEFAULTS[a]] for a, vs in ATTRIBUTE_VALUES.items()}


def write_preview(rows_path: Path | str, html_path: Path | str, *, n: int, seed: int = 0) -> Path:
    """Write the preview of a pre-annotation file, JSONL or Parquet (atomically)."""
    from clinical_nlp.io.jsonl import atomic_writer
    from clinical_nlp.io.note_rows import iter_note_rows

    rows = [row for _, row in iter_note_rows(rows_path)]
    with atomic_writer(html_path) as fh:
        fh.write(preview_html(rows, n=n, seed=seed))
    return Path(html_path)
