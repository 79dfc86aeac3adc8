"""Bad input, command by command: exit 2, a message naming the problem, and the store exactly as before.

Every case runs against a project that already holds work (a note, a pre-annotation, a human and
a gold annotation, a registered expert, a queued adjudication and audit entries); a dump of every
table and the audit head taken before the command must equal the one taken after it.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text as sql

from clinical_nlp.annotators import Annotator, Registry
from clinical_nlp.audit import AuditLog
from clinical_nlp.io._common import MAX_TEXT_CHARS
from clinical_nlp.project import init_project
from clinical_nlp.services.adjudication import QueueCandidate, build_queue
from clinical_nlp.store import Store
from clinical_nlp.types import Annotation, Note, Span

pytestmark = pytest.mark.integration

NOTE = "Patient denies chest pain. Aspirin 81 mg daily."


def _dump(store: Store) -> dict:
    with store.engine.connect() as conn:
        names = [r[0] for r in conn.execute(sql("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"))]
        return {n: sorted(map(tuple, conn.execute(sql(f'SELECT * FROM "{n}"')))) for n in names}


@pytest.fixture()
def project(tmp_path):
    project = init_project(tmp_path / "proj", name="bad-input")
    store = Store(project.store_url)
    gv = project.guideline().version
    store.add_notes([Note("n1", NOTE, {"patient": "p1"})], deidentified=True)
    rows = {}
    for kind, who in (("pre", "alice"), ("human", "alice"), ("gold", "consensus")):
        rows |= store.save_annotation(
            Annotation(
                "n1", who, (Span(15, 25, "Condition", "chest pain", {"negation": "negated"}),), guideline_version=gv
            ),
            kind=kind,
        )
    AuditLog(store).append("ingest", actor="setup", details={"notes": 1}, rows=rows)
    Registry(store).add(Annotator("dr_x", "expert", license_id="MD-1", guideline_version=gv))
    Registry(store).add(Annotator("alice", "annotator", guideline_version=gv))
    build_queue(store, [QueueCandidate("n1", "text", {"span_f1": 0.3})], expert="dr_x")
    return project


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def _rows(*rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


GOOD = {"id": "a", "text": NOTE}
HUGE = {"id": "big", "text": "x " * (MAX_TEXT_CHARS // 2 + 10)}  # a ~1 MB "note": over the one limit
SPAN_OFF = {"id": "a", "text": NOTE, "spans": [{"start": 40, "end": 400, "label": "Drug"}]}
SPAN_LABEL = {"id": "a", "text": NOTE, "spans": [{"start": 27, "end": 34, "label": "Medicine"}]}
SPAN_TEXT = {"id": "a", "text": NOTE, "spans": [{"start": 27, "end": 34, "label": "Drug", "text": "Tylenol"}]}
SPAN_ATTR = {"id": "a", "text": NOTE, "spans": [{"start": 27, "end": 34, "label": "Drug", "negation": "perhaps"}]}

# (case id, file content or None, command builder(input, out, project_dir), message regex)
FILE_CASES = [
    ("empty", "", "ingest", r"no (documents|notes)|empty"),
    ("blank-lines", "\n\n  \n", "ingest", r"no (documents|notes)|empty"),
    ("truncated-json", '{"id": "a", "text": "abc"', "ingest", r"invalid JSON"),
    ("not-an-object", "[1, 2]\n", "ingest", r"expected a JSON object"),
    ("non-utf8", b'{"id": "a", "text": "caf\xe9"}\n', "ingest", r"not valid UTF-8"),
    ("no-id", _rows({"text": "abc"}), "ingest", r"has no 'id'"),
    ("no-text", _rows({"id": "a"}), "ingest", r"has no 'text'"),
    ("empty-text", _rows({"id": "a", "text": "   "}), "ingest", r"empty text"),
    ("duplicate-ids", _rows(GOOD, GOOD), "ingest", r"duplicate id 'a'"),
    ("huge-note", _rows(HUGE), "ingest", r"exceeds the limit"),
    ("span-off-text", _rows(SPAN_OFF), "ingest-gold", r"beyond the text"),
    ("span-unknown-label", _rows(SPAN_LABEL), "ingest-gold", r"'Medicine' is not in the label schema"),
    ("span-text-mismatch", _rows(SPAN_TEXT), "ingest-gold", r"claims 'Tylenol'"),
    ("span-bad-attribute", _rows(SPAN_ATTR), "ingest-gold", r"negation='perhaps'|perhaps"),
    ("human-unknown-annotator", _rows(GOOD), "ingest-human-ghost", r"'ghost' is not registered"),
    ("convert-truncated", '{"id": "a"', "convert", r"invalid JSON"),
    ("convert-duplicates", _rows(GOOD, GOOD), "convert", r"duplicate id 'a'"),
    ("convert-span-off", _rows(SPAN_OFF), "convert", r"beyond the text"),
    ("convert-no-documents", "", "convert", r"no documents in input"),
    ("preannotate-duplicates", _rows(GOOD, GOOD), "preannotate", r"duplicate id 'a'"),
    ("preannotate-huge", _rows(HUGE), "preannotate", r"exceeds the limit"),
    ("preannotate-non-utf8", b'{"id": "a", "text": "\xff"}\n', "preannotate", r"not valid UTF-8"),
    ("preannotate-no-notes", "\n\n", "preannotate", r"no notes in input"),
    ("deid-truncated", '{"id": "a", "text": "Mr Smith"', "deid", r"invalid JSON"),
    ("deid-duplicates", _rows(GOOD, GOOD), "deid", r"duplicate id 'a'"),
    ("deid-non-utf8", b'{"id": "a", "text": "\xff"}\n', "deid", r"not (valid )?UTF-8"),
    ("export-duplicates", _rows(GOOD, GOOD), "export", r"duplicate id 'a'"),
    ("export-span-off", _rows(SPAN_OFF), "export", r"beyond the text"),
    ("export-unknown-label", _rows(SPAN_LABEL), "export", r"label 'Medicine', which the project's label schema"),
    ("export-empty", "", "export", r"no (documents|notes)|empty|nothing to export"),
    ("agree-empty", "", "agree", r"no (documents|notes|rows|labels)|empty"),
    ("agree-span-off", _rows({**SPAN_OFF, "annotator": "alice"}), "agree", r"beyond the text|ends beyond"),
    ("queue-truncated", '{"id": "a"', "queue", r"invalid JSON"),
    (
        "queue-text-differs",
        _rows({"id": "n1", "annotator": "alice", "text": "Other text.", "spans": []}),
        "queue",
        r"text differs",
    ),
    ("push-duplicates", _rows({**GOOD, "spans": []}, {**GOOD, "spans": []}), "push", r"duplicate id 'a'"),
    ("push-span-off", _rows(SPAN_OFF), "push", r"beyond the text"),
]


def _command(kind: str, input: str, out: str, project_dir: str) -> list[str]:
    pd = ["--project-dir", project_dir]
    return {
        "ingest": ["ingest", "-i", input, *pd],
        "ingest-gold": ["ingest", "-i", input, "--annotator", "corpus", *pd],
        "ingest-human-ghost": ["ingest", "-i", input, "--annotator", "ghost", "--kind", "human", *pd],
        "convert": ["convert", "-i", input, "-o", out + ".spacy"],
        "preannotate": ["preannotate", "-i", input, "-o", out + ".jsonl", "--rules-only"],
        "deid": ["deid", "-i", input, "-o", out + ".jsonl", *pd],
        "export": ["export", "-f", "jsonl", "-o", out, "-i", input, "--override", "test", *pd],
        "agree": ["agree", "-i", input, "-o", out + ".json"],
        "queue": ["adjudicate", "queue", "-i", input, "--expert", "dr_x", "--project", project_dir],
        "push": ["doccano", "push", "--input", input, "--annotators", "alice", *pd],
    }[kind]


@pytest.mark.parametrize(("content", "kind", "message"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_bad_file_exits_2_and_changes_nothing(project, tmp_path, cli, monkeypatch, content, kind, message):
    monkeypatch.setenv("DOCCANO_URL", "http://127.0.0.1:9")  # nothing listens: input must be refused before
    store = Store(project.store_url)
    before, head = _dump(store), AuditLog(store).head()
    path = _write(tmp_path / "input.jsonl", content)
    res = cli(_command(kind, path, str(tmp_path / "out"), str(project.root)))
    assert res.exit_code == 2, res.output
    assert __import__("re").search(message, res.output), res.output
    assert _dump(store) == before and AuditLog(store).head() == head
    assert not list(tmp_path.glob("out*")), "no partial output"


def _decide(project, decision, *, expert="dr_x", item="n1", reason="why"):
    return ["adjudicate", "decide", "--item", item, "--expert", expert, "--reason", reason,
            "--decision", decision, "--project", str(project.root)]  # fmt: skip


def _signal() -> list[str]:
    from conftest import shared_corpora_dir

    record = shared_corpora_dir() / "signals" / "qtdb" / "sel100"
    return ["consensus", "signal", "--record", str(record), "--annotators", "q1c,q2c"]


def _qa_review(item: str, label: str, expert: str, *extra: str):
    """The arguments of ``qa review ITEM LABEL --expert EXPERT [EXTRA] --project-dir P`` for a project ``p``."""
    return lambda p: ["qa", "review", item, label, "--expert", expert, *extra, "--project-dir", str(p.root)]


ARG_CASES = [
    ("decide-offsets", lambda p: _decide(p, '[{"start": 5000, "end": 5010, "label": "Condition"}]'), "beyond the text"),
    ("decide-label", lambda p: _decide(p, '[{"start": 15, "end": 25, "label": "Tumour"}]'), "'Tumour' is not in"),
    ("decide-json", lambda p: _decide(p, "[{"), "not valid JSON"),
    ("decide-unknown-expert", lambda p: _decide(p, "[]", expert="ghost"), "'ghost' is not registered|assigned to"),
    ("decide-not-queued", lambda p: _decide(p, "[]", item="zzz"), "not in the adjudication queue"),
    ("decide-empty-reason", lambda p: _decide(p, "[]", reason=" "), "needs an expert and a reason"),
    (
        "qa-unknown-note",
        _qa_review("zzz", "Condition", "dr_x"),
        "not in the store",
    ),  # fmt: skip
    (
        "qa-unknown-label",
        _qa_review("n1", "Tumour", "dr_x"),
        "not in the label schema",
    ),  # fmt: skip
    (
        "qa-annotator-not-expert",
        _qa_review("n1", "Condition", "alice"),
        "not as an expert",
    ),  # fmt: skip
    (
        "qa-bad-verdict",
        _qa_review("n1", "Condition", "dr_x", "--verdict", "meh"),
        "verdict 'meh'",
    ),  # fmt: skip
    (
        "qa-corrected-without-correction",
        _qa_review("n1", "Condition", "dr_x", "--verdict", "corrected"),
        "needs dr_x's correction in the gold",
    ),  # fmt: skip
    (
        "annotator-bad-role",
        lambda p: ["annotators", "add", "bob", "--role", "boss", "--project-dir", str(p.root)],
        "role 'boss'",
    ),
    (
        "annotator-bad-date",
        lambda p: ["annotators", "add", "bob", "--hipaa-training", "yesterday", "--project-dir", str(p.root)],
        "not YYYY-MM-DD",
    ),  # fmt: skip
    (
        "annotator-future-training",
        lambda p: ["annotators", "add", "bob", "--hipaa-training", "2999-01-01", "--project-dir", str(p.root)],
        "in the future",
    ),  # fmt: skip
    (
        "annotator-name-doccano-cannot-hold",
        lambda p: ["annotators", "add", "bob smith", "--project-dir", str(p.root)],
        "cannot be a Doccano user name",
    ),  # fmt: skip
    (
        "round-batch-0",
        lambda p: ["round", "start", "--annotators", "a,b", "--batch", "0", "--project-dir", str(p.root)],
        "--batch must be at least 1",
    ),
    (
        "round-overlap-3-of-2",
        lambda p: ["round", "start", "--annotators", "a,b", "--overlap", "3", "--project-dir", str(p.root)],
        "--overlap 3",
    ),  # fmt: skip
    ("signal-negative-tolerance", lambda p: [*_signal(), "--tolerance-ms", "-5"], "not in the range"),
    ("signal-bad-lag", lambda p: [*_signal(), "--lag", "abc"], "--lag must be"),
    ("signal-header-as-annotator", lambda p: [*_signal()[:-1], "hea,q1c"], "is a WFDB header"),
    ("imaging-negative-scans", lambda p: ["consensus", "imaging", "--lidc", "--scans", "-1"], "not in the range"),
    ("imaging-level-0", lambda p: ["consensus", "imaging", "--lidc", "--level", "0"], r"--level must be in \(0, 1\]"),
    (
        "audit-bad-head",
        lambda p: ["audit", "verify", "--head", "0" * 63 + "1", "--project-dir", str(p.root)],
        "not in the chain",
    ),
]


@pytest.mark.parametrize(("build", "message"), [c[1:] for c in ARG_CASES], ids=[c[0] for c in ARG_CASES])
def test_bad_arguments_exit_2_and_change_nothing(project, cli, build, message):
    store = Store(project.store_url)
    before, head = _dump(store), AuditLog(store).head()
    res = cli(build(project))
    assert res.exit_code == 2, res.output
    assert __import__("re").search(message, res.output), res.output
    assert _dump(store) == before and AuditLog(store).head() == head


def test_outside_a_project_is_a_clear_error(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = cli(["qa", "check"])
    assert res.exit_code == 2 and "no clinical-nlp project in" in res.output
    assert not (tmp_path / ".clinical-nlp").exists()


def test_outputs_never_overwrite_an_input(tmp_path, cli):
    """An --output naming an input file is refused before anything is read or written (a copy of the data)."""
    import shutil

    from conftest import shared_corpora_dir

    qtdb = shared_corpora_dir() / "signals" / "qtdb"
    if not qtdb.exists():
        pytest.skip("signals corpus not present")
    for ext in ("hea", "dat", "q1c", "q2c"):
        shutil.copy(qtdb / f"sel100.{ext}", tmp_path / f"sel100.{ext}")
    pool = tmp_path / "pool.jsonl"
    pool.write_text(_rows(GOOD), encoding="utf-8")
    for args, victim in (
        (["consensus", "signal", "--record", str(tmp_path / "sel100"), "--annotators", "q1c,q2c",
          "-o", str(tmp_path / "sel100.q2c")], tmp_path / "sel100.q2c"),
        (["al", "simulate", "--pool", str(pool), "--eval", str(pool), "--output", str(pool)], pool),
    ):  # fmt: skip
        before = victim.read_bytes()
        res = cli(args)
        assert res.exit_code == 2 and "would be overwritten" in res.output, res.output
        assert victim.read_bytes() == before
