"""The store's record of what is on Doccano (no server needed)."""

from __future__ import annotations

import pytest

from clinical_nlp.doccano.links import (
    close_imports,
    drop_links,
    example_links,
    open_imports,
    record_import,
    require_links,
    save_links,
)
from clinical_nlp.errors import DoccanoError, StoreError
from clinical_nlp.store import DoccanoLinkRow, Store


@pytest.fixture()
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path}/s.db")


def test_links_are_per_annotator_and_name_the_server(store):
    save_links(store, "p", "alice", "http://a:1", 7, [("n1", 11), ("n2", 12)])
    save_links(store, "p", "bob", "http://a:1", 8, [("n1", 21)])
    links = example_links(store, "p")
    assert set(links) == {("alice", "n1"), ("alice", "n2"), ("bob", "n1")}
    assert links[("bob", "n1")].doccano_project_id == 8 and links[("bob", "n1")].server == "http://a:1"
    assert set(example_links(store, "p", "alice")) == {("alice", "n1"), ("alice", "n2")}
    drop_links(store, "p", "alice", ["n1"])
    assert set(example_links(store, "p")) == {("alice", "n2"), ("bob", "n1")}


def test_a_note_is_linked_once_per_annotator(store):
    save_links(store, "p", "alice", "http://a:1", 7, [("n1", 11)])
    with pytest.raises(StoreError, match="UNIQUE"):
        save_links(store, "p", "alice", "http://a:1", 7, [("n1", 12)])
    assert example_links(store, "p")[("alice", "n1")].example_id == 11  # the failed write changed nothing


def test_imports_stay_open_until_closed(store):
    record_import(store, "p", "alice", "http://a:1", 7, "task-1", ["n1", "n2"])
    assert open_imports(store, "p", "alice", "http://a:1", 7) == {"task-1": ["n1", "n2"]}
    assert open_imports(store, "p", "alice", "http://other:1", 7) == {}  # another server: not this import
    close_imports(store, "p", "alice", ["task-1"])
    assert open_imports(store, "p", "alice", "http://a:1", 7) == {}


def test_require_links_explains_an_empty_or_legacy_store(store):
    with pytest.raises(DoccanoError, match="nothing of project 'p' has been pushed"):
        require_links(store, "p")
    with store.session() as s:  # a store pushed by the shared-project design
        s.add(DoccanoLinkRow(project="p", note_id="n1", example_id=1, state={"assigned": ["alice"]}))
    with pytest.raises(DoccanoError, match="shared-project design .* push the notes again"):
        require_links(store, "p")


def test_an_exported_example_linked_to_another_note_is_stale():
    from clinical_nlp.doccano.links import ExampleLink
    from clinical_nlp.doccano.pull import _stale_in_export

    mine = {
        11: ExampleLink("alice", "n1", "http://a:1", 7, 11),
        12: ExampleLink("alice", "n2", "http://a:1", 7, 12),
    }
    assert _stale_in_export([{"id": 11, "note_id": "n1"}, {"id": 12, "note_id": "n2"}, {"id": 99}], mine) == []
    # the same example ids on a re-created server hold other notes: both are stale
    assert _stale_in_export([{"id": 11, "note_id": "x"}, {"id": 12, "note_id": "n1"}], mine) == ["n1", "n2"]
