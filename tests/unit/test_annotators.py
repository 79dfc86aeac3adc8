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
