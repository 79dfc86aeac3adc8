from __future__ import annotations

import pytest

from clinical_nlp.annotators import Annotator, Registry
from clinical_nlp.audit import AuditLog
from clinical_nlp.errors import InputFormatError, PolicyError
from clinical_nlp.qa import (
    check_qa_coverage,
    guideline_drift,
    qa_todo,
    record_review,
    require_qa_coverage,
    review_history,
    sampled,
)
from clinical_nlp.store import Store
from clinical_nlp.types import Annotation, Span


def _store():
    store = Store("sqlite:///:memory:")
    Registry(store).add(Annotator("doc", role="expert", license_id="L", guideline_version="1.0.0+cur"))
    Registry(store).add(Annotator("ann"))
    for i in range(40):
        store.save_annotation(
            Annotation(
                f"n{i}",
                "ann",
                (Span(0, 3, "Drug"), Span(4, 8, "Condition")),
                guideline_version="1.0.0+old" if i < 3 else "1.0.0+cur",
            )
        )
    return store


def test_safety_critical_needs_full_review_and_lists_items():
    store = _store()
    with pytest.raises(PolicyError, match=r"Drug: 40 item\(s\) still to review: n0"):
        require_qa_coverage(store, labels=["Drug"])
    for i in range(40):
        record_review(store, f"n{i}", "Drug", "doc")
    assert require_qa_coverage(store, labels=["Drug"]).met
    with pytest.raises(PolicyError, match="'ann' is registered as 'annotator', not as an expert"):
        record_review(store, "n1", "Drug", "ann")


@pytest.mark.parametrize(
    ("item", "label", "expert", "kw", "error", "message"),
    [
        ("nope", "Drug", "doc", {}, InputFormatError, "item 'nope' is not in the store"),
        ("n1", "Tumour", "doc", {}, InputFormatError, "'Tumour' is not in the label schema"),
        ("n1", "Device", "doc", {}, InputFormatError, "no annotation of the item carries 'Device'"),
        ("n1", "Drug", "ghost", {}, PolicyError, "'ghost' is not registered"),
        ("n1", "Drug", "doc", {"verdict": "meh"}, InputFormatError, "verdict 'meh'"),
        ("n1", "Drug", "doc", {"guideline_version": "2.0"}, PolicyError, "lacks qualifications for Drug"),
    ],
)
def test_bad_review_is_refused_and_writes_nothing(item, label, expert, kw, error, message):
    store = _store()
    entries = len(AuditLog(store).entries())
    with pytest.raises(error, match=message):
        record_review(store, item, label, expert, **kw)
    assert review_history(store) == [] and len(AuditLog(store).entries()) == entries


def test_a_later_review_supersedes_and_both_are_kept():
    store = _store()
    record_review(store, "n1", "Drug", "doc")
    store.save_annotation(Annotation("n1", "doc", (Span(4, 8, "Condition"),)), kind="gold")  # her correction
    record_review(store, "n1", "Drug", "doc", verdict="corrected", comment="dose is not a drug")
    assert [h["verdict"] for h in review_history(store, "n1")] == ["confirmed", "corrected"]
    last = AuditLog(store).entries("qa_review")[-1]
    assert last.details["supersedes"]["expert"] == "doc" and last.details["verdict"] == "corrected"


@pytest.mark.parametrize("verdict", ["corrected", "rejected"])
def test_a_correction_without_the_corrected_gold_is_refused(verdict):
    """Before: 'qa review --verdict corrected' counted the item as reviewed, its gold still wrong."""
    store = _store()
    with pytest.raises(PolicyError, match=rf"a '{verdict}' review needs doc's correction in the gold"):
        record_review(store, "n2", "Drug", "doc", verdict=verdict)
    assert review_history(store) == []
    store.save_annotation(Annotation("n2", "doc", (Span(4, 8, "Condition"),)), kind="gold")
    record_review(store, "n2", "Drug", "doc", verdict=verdict)
    assert [h["verdict"] for h in review_history(store, "n2")] == [verdict]


def test_sampling_is_deterministic_and_near_rate():
    picked = [sampled(f"item{i}", "Condition", 0.2) for i in range(2000)]
    assert picked == [sampled(f"item{i}", "Condition", 0.2) for i in range(2000)]
    assert 0.15 < sum(picked) / 2000 < 0.25
    rep = check_qa_coverage(_store(), labels=["Condition"])
    req = rep.labels["Condition"].required
    assert 0 < len(req) < 40


def test_expert_gold_annotation_counts_as_review():
    store = _store()
    for i in range(40):
        store.save_annotation(Annotation(f"n{i}", "doc", (Span(0, 3, "Drug"),)), kind="gold")
    assert check_qa_coverage(store).met


def test_guideline_drift_reports_other_versions():
    rep = guideline_drift(_store(), "1.0.0+cur")
    assert rep.drifted and len(rep.stale) == 3 and rep.by_version == {"1.0.0+old": 3, "1.0.0+cur": 37}


def test_qa_todo_lists_every_open_review_with_why():
    store = _store()
    todo = qa_todo(store, labels=["Drug", "Condition"])
    drug = [r for r in todo if r["label"] == "Drug"]
    assert len(drug) == 40 and all(r["safety_critical"] and r["why"] == "safety-critical: every item" for r in drug)
    cond = [r["item"] for r in todo if r["label"] == "Condition"]
    assert cond == sorted(i for i in (f"n{k}" for k in range(40)) if sampled(i, "Condition", 0.2)), "nothing cut off"
    for r in todo:
        if r["label"] == "Condition":
            assert r["why"] == "in the 20% review sample"
    record_review(store, "n7", "Drug", "doc")
    assert ("n7", "Drug") not in {(r["item"], r["label"]) for r in qa_todo(store, labels=["Drug"])}


def test_cli_qa_todo_json(tmp_path):
    import json

    from typer.testing import CliRunner

    from clinical_nlp.cli.app import app
    from clinical_nlp.project import init_project

    project = init_project(tmp_path / "p", name="qa-todo")
    store = Store(project.store_url)
    for i in range(30):
        store.save_annotation(Annotation(f"n{i}", "ann", (Span(0, 3, "Drug"),)))
    res = CliRunner().invoke(app, ["qa", "todo", "--json", "--project-dir", str(project.root)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == 30 and {r["label"] for r in rows} == {"Drug"}  # all of them, no "(+N more)"
    text = CliRunner().invoke(app, ["qa", "todo", "--project-dir", str(project.root)])
    assert text.output.strip().endswith("30 review(s) open") and "n29\tDrug" in text.output
