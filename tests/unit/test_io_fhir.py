"""FHIR R4 input: DocumentReference, Bundles (with DiagnosticReport duplicates), Bulk NDJSON, errors."""

from __future__ import annotations

import base64
import json

import pytest

from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.fhir import read_fhir
from clinical_nlp.io.registry import read_corpus


def _docref(
    rid: str, text: str | None, *, patient: str = "urn:uuid:p1", ctype: str = "text/plain", plain: bool = False
) -> dict:
    att: dict = {"contentType": ctype}
    if text is not None:
        att["data"] = base64.b64encode(text.encode("utf-8")).decode() if not plain else text
    return {
        "resourceType": "DocumentReference",
        "id": rid,
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
        "subject": {"reference": patient},
        "date": "2024-02-03T10:00:00Z",
        "content": [{"attachment": att}],
    }


def _report(rid: str, text: str, patient: str = "urn:uuid:p1") -> dict:
    return {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        "subject": {"reference": patient},
        "presentedForm": [{"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}],
    }


def _bundle(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": f"urn:uuid:{r['id']}", "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources
        ],
    }


def test_single_document_reference_metadata(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(_docref("n1", "Patient denies chest pain. Naïve.")))
    [doc] = read_fhir(p)
    assert doc.id == "n1" and doc.text == "Patient denies chest pain. Naïve."
    meta = doc.note.metadata
    assert meta["patient"] == "p1" and meta["date"].startswith("2024-02-03")
    assert meta["note_type"] == "Progress note" and doc.spans == ()


def test_bundle_dedupes_diagnostic_report_copies(tmp_path):
    p = tmp_path / "b.json"
    p.write_text(
        json.dumps(
            _bundle(
                _docref("n1", "Note one."),
                _report("r1", "Note one."),
                _report("r2", "Only in a report."),
                {"resourceType": "Patient", "id": "p1"},
            )
        )
    )
    docs = read_fhir(p)
    assert [d.id for d in docs] == ["n1", "r2"]
    assert docs[1].note.metadata["resource_type"] == "DiagnosticReport"


def test_bulk_ndjson(tmp_path):
    p = tmp_path / "DocumentReference.000.ndjson"
    p.write_text("\n".join(json.dumps(_docref(f"n{i}", f"Text {i}.")) for i in range(3)) + "\n")
    assert [d.id for d in read_corpus(p)] == ["n0", "n1", "n2"]


@pytest.mark.parametrize(
    "resource,needle",
    [
        (_docref("n1", None), "no text/\\* attachment"),
        (_docref("n1", "   "), "'n1': empty text"),
        (_docref("n1", "not base64!!", plain=True), "not valid base64"),
        ({**_docref("n1", "x"), "date": "yesterday-ish"}, "invalid FHIR DocumentReference"),
        ({**_docref("n1", "x"), "content": []}, "no content attachment"),
    ],
)
def test_bad_document_references(tmp_path, resource, needle):
    p = tmp_path / "bad.ndjson"
    p.write_text(json.dumps(_docref("ok", "fine")) + "\n" + json.dumps(resource) + "\n")
    with pytest.raises(InputFormatError, match=rf"bad.ndjson:2: .*{needle}"):
        read_fhir(p)


def test_invalid_utf8_attachment(tmp_path):
    res = _docref("n1", "x")
    res["content"][0]["attachment"]["data"] = base64.b64encode(b"caf\xe9").decode()
    p = tmp_path / "d.json"
    p.write_text(json.dumps(res))
    with pytest.raises(InputFormatError, match="DocumentReference/n1: attachment is not valid utf-8"):
        read_fhir(p)


def test_not_fhir(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputFormatError, match="no 'resourceType'"):
        read_fhir(p)
    p.write_text("{oops")
    with pytest.raises(InputFormatError, match="x.json:1: invalid JSON"):
        read_fhir(p)


def test_plain_text_rendition_preferred(tmp_path):
    res = _docref("n1", "Plain note.")
    html = base64.b64encode(b"<p>Plain note.</p>").decode()
    res["content"].insert(0, {"attachment": {"contentType": "text/html", "data": html}})
    p = tmp_path / "d.json"
    p.write_text(json.dumps(res))
    [doc] = read_fhir(p)
    assert doc.id == "n1" and doc.text == "Plain note."
