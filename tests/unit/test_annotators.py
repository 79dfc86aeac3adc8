from __future__ import annotations

import pytest

from clinical_nlp.annotators import Annotator, Registry, check_assignment, has_phi_access
from clinical_nlp.audit import AuditLog
from clinical_nlp.errors import ConfigError, PolicyError
from clinical_nlp.store import Store


@pytest.fixture()
def store():
    return Store("sqlite:///:memory:")


def test_assignment_refuses_missing_qualifications(store):
    reg = Registry(store)
    reg.add(Annotator("ann", guideline_version="1.0.0+abc"))
    reg.add(Annotator("doc", role="expert", license_id="MD-1", guideline_version="1.0.0+abc"))
    check_assignment(reg, "ann", ["Condition"])
    with pytest.raises(PolicyError, match="Drug: clinical_license"):
        check_assignment(reg, "ann", ["Condition", "Drug"])
    assert check_assignment(reg, "doc", ["Drug"]).name == "doc"
    with pytest.raises(PolicyError, match="guideline_training"):
        check_assignment(reg, "doc", ["Drug"], guideline_version="2.0.0+new")
    with pytest.raises(PolicyError, match="not registered"):
        check_assignment(reg, "ghost", ["Condition"])
    assert [e.action for e in AuditLog(store).entries()] == ["annotator", "annotator"]


def test_phi_access_and_validation(store):
    reg = Registry(store)
    reg.add(Annotator("p", phi_access=True, hipaa_training="2026-01-01"))
    reg.add(Annotator("q"))
    assert has_phi_access(store, "p") and not has_phi_access(store, "q") and not has_phi_access(store, "zz")
    with pytest.raises(ConfigError, match="role"):
        Annotator("x", role="boss")
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        Annotator("x", hipaa_training="yesterday")
    with pytest.raises(ConfigError, match="already exists"):
        reg.add(Annotator("q"))


@pytest.mark.parametrize(
    ("person", "needle"),
    [
        (Annotator("alice smith"), "cannot be a Doccano user name"),
        (Annotator("al/../x"), "cannot be a Doccano user name"),
        (Annotator("a" * 151), "at most 150"),
        (Annotator("alice", email="notanemail"), "is not an address"),
        (Annotator("alice", hipaa_training="2999-01-01"), "in the future"),
    ],
)
def test_a_record_that_cannot_be_right_is_not_registered(store, person, needle):
    """Refused at registration, not at the first push: a name Doccano cannot hold, a bad e-mail, a HIPAA
    training dated in the future (it would count as current training)."""
    with pytest.raises(ConfigError, match=needle):
        Registry(store).add(person)
    assert Registry(store).list() == [] and AuditLog(store).entries() == []
    Registry(store).add(Annotator("alice.smith+2@x", email="a@b.org", hipaa_training="2026-01-01"))


def test_push_refuses_unregistered_or_unqualified_annotators_before_anything_is_sent(store):
    """The qualification gate runs before the server is contacted (the URL is unreachable on purpose)."""
    from clinical_nlp import doccano as dc
    from clinical_nlp.config import load_guideline
    from clinical_nlp.types import AnnotatedNote, Note, Span

    guideline = load_guideline()
    doc = AnnotatedNote(Note("n1", "No fever."), (Span(3, 8, "Condition", "fever"),))
    rows = [(doc, {})]
    store.add_notes([doc.note], deidentified=True, method="test")
    nowhere = dc.DoccanoCredentials(url="http://127.0.0.1:9")
    reg = Registry(store)
    reg.add(Annotator("rn", guideline_version=guideline.version))  # no licence: may not annotate Drug
    reg.add(Annotator("old", license_id="RN-2", guideline_version="0.9.0+old"))
    before = [e.action for e in AuditLog(store).entries()]
    with pytest.raises(PolicyError) as err:
        dc.push(store, guideline, "p", rows, ["rn", "old", "ghost"], creds=nowhere)
    msg = str(err.value)
    assert "'rn' lacks qualifications for Drug: clinical_license" in msg
    assert "'old' lacks qualifications for" in msg and "guideline_training" in msg
    assert "'ghost' is not registered" in msg and "nothing sent" in msg
    assert [e.action for e in AuditLog(store).entries()] == before
    reg.add(Annotator("rn", license_id="RN-1", guideline_version=guideline.version), replace=True)
    with pytest.raises(dc.DoccanoError, match=r"127\.0\.0\.1:9"):  # qualified: the push goes on to the server
        dc.push(store, guideline, "p", rows, ["rn"], creds=nowhere)


def _phi_push(store, rows, annotators, **kw):
    from clinical_nlp import doccano as dc
    from clinical_nlp.config import load_guideline

    return dc.push(store, load_guideline(), "p", rows, annotators, creds=dc.DoccanoCredentials(url="http://127.0.0.1:9"),
                   **kw)  # fmt: skip


def test_push_gate_trusts_the_store_record_of_exactly_this_text_not_an_input_field(store):
    from clinical_nlp import doccano as dc
    from clinical_nlp.types import AnnotatedNote, Note

    reg = Registry(store)
    from clinical_nlp.config import load_guideline

    reg.add(Annotator("rn", license_id="RN-1", guideline_version=load_guideline().version))
    raw = AnnotatedNote(Note("n1", "Seen by Dr. Smith today."), ())
    with pytest.raises(PolicyError, match="no de-identification record"):  # the claim in the file is ignored
        _phi_push(store, [(raw, {"deidentified": True})], ["rn"])
    assert store.notes() == [] and not store.is_deidentified("n1")  # and not recorded as de-identified
    store.add_notes([Note("n1", "Seen by Dr. Xavier today.")], deidentified=True, method="deid")
    with pytest.raises(PolicyError, match="differ from the de-identified text the store holds"):  # another text
        _phi_push(store, [(raw, {})], ["rn"])
    ok = AnnotatedNote(Note("n1", "Seen by Dr. Xavier today."), ())
    with pytest.raises(dc.DoccanoError):  # the recorded text passes the gate (then the server is unreachable)
        _phi_push(store, [(ok, {})], ["rn"])
    store.add_notes([Note("n1", "Seen by Dr. Smith today.")])  # the stored text changed since: no longer
    assert not store.is_deidentified("n1")


def test_phi_override_needs_every_receiving_annotator_to_have_phi_access(store):
    from clinical_nlp import doccano as dc
    from clinical_nlp.config import load_guideline
    from clinical_nlp.types import AnnotatedNote, Note

    version = load_guideline().version
    reg = Registry(store)
    reg.add(Annotator("officer", role="admin", phi_access=True))
    reg.add(Annotator("rn", license_id="RN-1", guideline_version=version))
    reg.add(Annotator("md", license_id="MD-1", guideline_version=version, phi_access=True))
    raw = AnnotatedNote(Note("n1", "Seen by Dr. Smith today."), ())
    with pytest.raises(PolicyError, match=r"annotator\(s\) \['rn'\] have no PHI access"):
        _phi_push(store, [(raw, {})], ["rn", "md"], allow_phi=True, actor="officer")
    assert [e.action for e in AuditLog(store).entries()] == ["annotator"] * 3
    with pytest.raises(dc.DoccanoError):  # only md receives it: allowed, audited with her name
        _phi_push(store, [(raw, {})], ["md"], allow_phi=True, actor="officer")
    (override,) = [e for e in AuditLog(store).entries() if e.action == "override"]
    assert override.actor == "officer" and override.details["receivers"] == ["md"]


def test_list_and_show_judge_guideline_training_against_the_current_guideline(tmp_path, cli):
    from clinical_nlp.project import init_project

    project = init_project(tmp_path / "proj")
    pd = ["--project-dir", str(project.root)]
    bob = cli(["annotators", "add", "bob", "--guideline-version", "0.1.0+old", *pd])
    assert bob.exit_code == 0 and "warning: guideline version '0.1.0+old' is not the current one" in bob.output
    cara = cli(["annotators", "add", "cara", *pd])  # trained on the current one by default
    assert cara.exit_code == 0 and "warning" not in cara.output
    listing = dict(line.split("\t")[::2] for line in cli(["annotators", "list", *pd]).output.splitlines())
    assert "guideline_training" not in listing["bob"] and "guideline_training" in listing["cara"]
    code, output = cli(["annotators", "show", "bob", *pd])
    assert code == 0 and '"guideline_training"' not in output and project.guideline().version in output
