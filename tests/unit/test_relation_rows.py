"""The relation commands' input check: every malformed row is refused with its note named."""

from __future__ import annotations

import json

import pytest

from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.relation_rows import read_relation_rows

TEXT = "HbA1c > 7%"


def _span(**over):
    return {"id": "T1", "start": 0, "end": 5, "label": "Measurement", **over}


def _write(tmp_path, *rows) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


GOOD = {
    "id": "a",
    "text": TEXT,
    "spans": [_span(), _span(id="T2", start=6, end=10, label="Value")],
    "relations": [{"type": "Has_value", "arg1": "T1", "arg2": "T2"}, {"type": "AND", "args": ["T1", "T2"]}],
}


def test_a_good_row_is_read_as_it_is(tmp_path):
    assert read_relation_rows(_write(tmp_path, GOOD), with_relations=True) == [GOOD]


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ({"id": "T1"}, "'spans' must be a list"),
        (["T1"], "is not an object"),
        ([{"start": 0, "end": 5, "label": "Value"}], "needs an 'id'"),
        ([_span(label=None)], "needs a string 'label'"),
        ([_span(start="0")], "needs integer 'start' and 'end'"),
        ([_span(end=True)], "needs integer 'start' and 'end'"),
        ([_span(end=50)], "offsets 0-50 are not inside the text"),
        ([_span(start=4, end=2)], "offsets 4-2 are not inside the text"),
        ([_span(), _span(start=6, end=10)], "two spans have the id 'T1'"),
    ],
)
def test_malformed_spans_are_refused_with_the_note_and_line(tmp_path, spans, message):
    path = _write(tmp_path, {"id": "ok", "text": TEXT, "spans": []}, {"id": "a", "text": TEXT, "spans": spans})
    with pytest.raises(InputFormatError, match=message) as err:
        read_relation_rows(path)
    assert "in.jsonl:2: note 'a'" in str(err.value)


@pytest.mark.parametrize(
    ("relation", "message"),
    [
        ({"type": "Has_value", "arg1": "T1", "arg2": "T9"}, r"span id\(s\) \['T9'\]"),
        ({"type": "OR", "args": ["T1"]}, "needs 'arg1' and 'arg2'"),
        ({"arg1": "T1", "arg2": "T2"}, "needs a string 'type'"),
    ],
)
def test_training_relations_must_refer_to_the_notes_spans(tmp_path, relation, message):
    row = {**GOOD, "relations": [relation]}
    with pytest.raises(InputFormatError, match=message):
        read_relation_rows(_write(tmp_path, row), with_relations=True)
    assert read_relation_rows(_write(tmp_path, row)) == [row]  # prediction input: relations are not read


def test_duplicate_notes_and_empty_files_are_refused(tmp_path):
    with pytest.raises(InputFormatError, match="duplicate id 'a'"):
        read_relation_rows(_write(tmp_path, GOOD, GOOD))
    with pytest.raises(InputFormatError, match="no rows"):
        read_relation_rows(_write(tmp_path))
    with pytest.raises(InputFormatError, match="needs an 'id' and a string 'text'"):
        read_relation_rows(_write(tmp_path, {"id": "a", "text": 3}))
