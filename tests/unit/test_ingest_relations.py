"""Ingested gold keeps its links; links the schema does not allow are refused, or dropped and counted."""

from __future__ import annotations

import json

import pytest

from clinical_nlp.errors import InputFormatError
from clinical_nlp.project import init_project
from clinical_nlp.services.ingest import ingest_corpus
from clinical_nlp.store import Store

TEXT = "No chest pain for 3 days"
SPANS = [
    {"id": "T1", "start": 3, "end": 13, "label": "Condition"},
    {"id": "T2", "start": 14, "end": 24, "label": "Temporal"},
    {"id": "T3", "start": 0, "end": 2, "label": "Cue"},
]


def _file(tmp_path, relations):
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps({"id": "n1", "text": TEXT, "spans": SPANS, "relations": relations}) + "\n")
    return path


def test_links_are_stored_and_those_naming_dropped_spans_go_with_them(tmp_path):
    project = init_project(tmp_path / "p")
    links = [
        {"type": "Has_temporal", "arg1": "T1", "arg2": "T2"},
        {"type": "Has_negation", "arg1": "T1", "arg2": "T3"},  # T3's label is not the schema's
        {"type": "Has_cause", "arg1": "T1", "arg2": "T2"},  # nor is this type
    ]
    summary = ingest_corpus(_file(tmp_path, links), project, annotator="corpus", unknown_labels="drop")
    assert (summary["dropped_spans"], summary["dropped_links"]) == (1, 1)
    (ann,) = Store(project.store_url).annotations(kind="gold")
    assert [dict(r) for r in ann.relations] == [links[0]]


def test_a_link_the_schema_does_not_allow_is_refused_by_default(tmp_path):
    project = init_project(tmp_path / "p")
    path = tmp_path / "gold.jsonl"
    spans = [s for s in SPANS if s["label"] != "Cue"]
    path.write_text(json.dumps({"id": "n1", "text": TEXT, "spans": spans,
                                "relations": [{"type": "Has_cause", "arg1": "T1", "arg2": "T2"}]}) + "\n")  # fmt: skip
    with pytest.raises(InputFormatError, match="relation type 'Has_cause' is not in the label schema"):
        ingest_corpus(path, project, annotator="corpus")
    assert Store(project.store_url).annotations() == [] and Store(project.store_url).notes() == []
