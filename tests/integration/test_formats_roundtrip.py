"""Round trips of every corpus format on the bundled real samples, and the corpus CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from clinical_nlp.cli.app import app
from clinical_nlp.io.brat import read_brat, write_brat
from clinical_nlp.io.conll import read_conll, resolve_overlaps, write_conll
from clinical_nlp.io.dataframe import read_dataframe, write_dataframe
from clinical_nlp.io.docbin import read_docbin, write_docbin
from clinical_nlp.io.doccano_jsonl import read_doccano_jsonl, write_doccano_jsonl
from clinical_nlp.io.fhir import read_fhir
from clinical_nlp.io.jsonl import read_jsonl, write_jsonl
from clinical_nlp.io.registry import read_corpus, write_corpus
from clinical_nlp.store import Store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chia(corpora_dir):
    return read_jsonl(corpora_dir / "chia" / "train.jsonl", allow_empty=True)


def _ann_by_hand(row: dict) -> str:
    """BRAT standoff written straight from the Chia JSON row (independent of our writer)."""
    lines = []
    for s in row["spans"]:
        pieces = s.get("fragments") or [[s["start"], s["end"]]]
        offsets = ";".join(f"{a} {b}" for a, b in pieces)
        surface = " ".join(row["text"][a:b] for a, b in pieces).replace("\n", " ")
        lines.append(f"{s['id']}\t{s['label']} {offsets}\t{surface}")
    for r in row.get("relations", []):
        if "args" in r:
            lines.append(f"*\t{r['type']} {' '.join(r['args'])}")
        else:
            lines.append(f"{r['id']}\t{r['type']} Arg1:{r['arg1']} Arg2:{r['arg2']}")
    return "\n".join(lines) + "\n"


def test_chia_discontinuous_brat_jsonl_docbin_jsonl_unchanged(corpora_dir, tmp_path):
    rows = [json.loads(line) for line in (corpora_dir / "chia" / "train.jsonl").read_text().splitlines()]
    rows = [r for r in rows if any(s.get("fragments") for s in r["spans"])][:3]
    assert rows, "the Chia sample has discontinuous spans"
    brat = tmp_path / "brat"
    brat.mkdir()
    for r in rows:
        (brat / f"{r['id']}.txt").write_text(r["text"], encoding="utf-8")
        (brat / f"{r['id']}.ann").write_text(_ann_by_hand(r), encoding="utf-8")
    docs = read_brat(brat)
    assert any(s.fragments for d in docs for s in d.spans)
    assert any("args" in rel for d in docs for rel in d.relations)
    write_jsonl(tmp_path / "a.jsonl", docs)
    first = read_jsonl(tmp_path / "a.jsonl")
    write_docbin(first, tmp_path / "a.spacy")
    write_jsonl(tmp_path / "b.jsonl", read_docbin(tmp_path / "a.spacy"))
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
    assert read_jsonl(tmp_path / "b.jsonl") == docs
    # and the spans equal the original Chia annotation
    orig = {d.id: d for d in read_jsonl(corpora_dir / "chia" / "train.jsonl", allow_empty=True)}
    for d in docs:
        assert [(s.pieces, s.label, s.id) for s in d.spans] == [(s.pieces, s.label, s.id) for s in orig[d.id].spans]


def _strip_equiv_ids(docs):
    return [[{k: v for k, v in r.items() if not ("args" in r and k == "id")} for r in d.relations] for d in docs]


def test_chia_jsonl_brat_jsonl(chia, tmp_path):
    write_brat(chia, tmp_path / "brat")
    back = read_brat(tmp_path / "brat", allow_empty=True)
    assert [(d.note, d.spans) for d in back] == [(d.note, d.spans) for d in chia]
    # BRAT '*' lines carry no id of their own: equivalence groups are renumbered *0, *1 ...
    assert _strip_equiv_ids(back) == _strip_equiv_ids(chia)


@pytest.mark.parametrize(
    "name,writer,reader",
    [
        ("x.spacy", write_docbin, read_docbin),
        ("x.parquet", write_dataframe, read_dataframe),
        ("x.csv", write_dataframe, read_dataframe),
    ],
)
def test_chia_lossless_formats(chia, tmp_path, name, writer, reader):
    writer(chia, tmp_path / name)
    kwargs = {"allow_empty": True} if reader is read_docbin else {}
    assert reader(tmp_path / name, **kwargs) == chia


def test_chia_conll_lossy_policy(chia, tmp_path):
    write_conll(chia, tmp_path / "x.conll", overlap="longest")
    back = read_conll(tmp_path / "x.conll", allow_empty=True)
    assert [d.text for d in back] == [d.text for d in chia]
    from clinical_nlp.io.conll import tokenize

    for b, d in zip(back, chia):
        toks = tokenize(d.text)
        # documented loss: a boundary inside a token widens the span to whole tokens
        widened: list[tuple[int, int, str]] = []
        for s in resolve_overlaps(d, "longest"):
            a = min(a for a, z, _ in toks if a < s.end and s.start < z)
            z = max(z for a, z, _ in toks if a < s.end and s.start < z)
            if all(z <= w[0] or w[1] <= a for w in widened):  # two spans in one token: first wins
                widened.append((a, z, s.label))
        assert [(s.start, s.end, s.label) for s in b.spans] == widened


def test_negex_doccano_attributes(corpora_dir, tmp_path):
    from clinical_nlp.io.jsonl import iter_json_rows
    from clinical_nlp.types import AnnotatedNote, Note, Span

    docs = []
    for _, row in iter_json_rows(corpora_dir / "negex_context" / "sample.jsonl"):
        attrs = {k: row[k] for k in ("negation", "temporality", "experiencer")}
        docs.append(
            AnnotatedNote(
                Note(row["id"], row["text"]), (Span(row["start"], row["end"], "Condition", row["concept"], attrs),)
            ).verified()
        )
    write_doccano_jsonl(docs, tmp_path / "d.jsonl")
    back = read_doccano_jsonl(tmp_path / "d.jsonl")
    norm = lambda d: [
        (s.start, s.end, s.label, {k: v for k, v in s.attributes.items() if v not in ("affirmed", "recent", "patient")})
        for s in d.spans
    ]
    assert [norm(d) for d in back] == [norm(d) for d in docs]
    assert sum(s.negation == "negated" for d in back for s in d.spans) > 0


def test_bundled_fhir_bundle(corpora_dir):
    docs = read_corpus(corpora_dir / "fhir")
    notes = read_jsonl(corpora_dir / "notes" / "synthea_notes.jsonl")
    assert len(docs) == 32  # 32 DocumentReferences; the 32 DiagnosticReport copies are deduped
    assert len({d.text for d in docs}) == 32
    assert all(d.note.metadata["patient"] == "3f6fd0bb-6cd3-eb3f-4401-cd38ace25f2b" for d in docs)
    by_id = {n.id: n for n in notes}
    shared = [d for d in docs if d.id in by_id]
    assert all(by_id[d.id].text == d.text for d in shared)


def test_shared_fhir_bundles_and_bulk(shared_corpora):
    base = shared_corpora / "synthea_fhir"
    bundles = read_fhir(base / "bundles")
    assert len(bundles) == len({(d.note.metadata["patient"], d.text) for d in bundles})
    assert {d.note.metadata["resource_type"] for d in bundles} == {"DocumentReference"}
    bulk = read_corpus(base / "bulk_ndjson")
    assert len(bulk) == 30 and all(d.note.patient and d.note.date for d in bulk)


def test_cli_convert_and_ingest(corpora_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLINICAL_NLP_STORE_URL", raising=False)
    runner = CliRunner()
    src = str(corpora_dir / "chia" / "dev.jsonl")
    res = runner.invoke(app, ["convert", "--input", src, "--output", "dev.spacy", "--allow-empty"])
    assert res.exit_code == 0, res.output
    assert "to docbin" in res.output
    res = runner.invoke(app, ["convert", "-i", "dev.spacy", "-o", "dev_brat", "--to", "brat", "--allow-empty"])
    assert res.exit_code == 0, res.output
    assert read_corpus("dev_brat", allow_empty=True)[0].spans == read_jsonl(src, allow_empty=True)[0].spans
    res = runner.invoke(app, ["init", "proj"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["ingest", "--input", str(corpora_dir / "fhir"), "--project-dir", "proj", "--deidentified"]
    )
    assert res.exit_code == 0, res.output
    args = ["ingest", "-i", src, "--project-dir", "proj", "--annotator", "chia", "--allow-empty"]
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and "not in the label schema" in str(res.exception)  # Chia has 'Person', 'Mood', ...
    assert Store(f"sqlite:///{tmp_path / 'proj' / 'state.db'}").annotations() == []  # refused: nothing stored
    res = runner.invoke(app, [*args, "--unknown-labels", "drop"])
    assert res.exit_code == 0, res.output
    assert "dropped" in res.output
    store = Store(f"sqlite:///{tmp_path / 'proj' / 'state.db'}")
    assert len(store.notes()) == 32 + 30
    assert store.is_deidentified("cc015824-05e9-69b1-ec0d-2e3d5c588efc")
    assert len(store.annotations(kind="gold", annotator="chia")) == 30
    kept_links = 0
    for ann in store.annotations(kind="gold", annotator="chia"):  # no link names a dropped span
        ids = {str(s.id) for s in ann.spans}
        for rel in ann.relations:
            assert {str(a) for a in (rel["args"] if "args" in rel else [rel["arg1"], rel["arg2"]])} <= ids, rel
            kept_links += 1
    assert kept_links > 0
    from clinical_nlp.audit import AuditLog

    assert [e.details["notes"] for e in AuditLog(store).entries("ingest")] == [32, 30]
    for cmd in ("convert", "ingest"):
        assert "--input" in runner.invoke(app, [cmd, "--help"]).output


def test_cli_bad_input_exit_2_and_no_output(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9"}\n')
    out = tmp_path / "out.spacy"
    proc = subprocess.run(
        [sys.executable, "-m", "clinical_nlp.cli.app", "convert", "-i", str(bad), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "bad.jsonl:2" in proc.stderr and "UTF-8" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_write_corpus_overlap_error_leaves_no_file(chia, tmp_path):
    from clinical_nlp.errors import InputFormatError

    with pytest.raises(InputFormatError, match="overlap"):
        write_corpus(chia, tmp_path / "x.conll")
    assert list(tmp_path.iterdir()) == []


def test_whole_chia_train_keeps_its_relations_through_every_export_format(shared_corpora, tmp_path):
    """All of Chia train (about 12,600 links): BRAT, DocBin, Parquet and JSONL keep every relation as it
    was; the Hugging Face dataset keeps each as a link (groups as links between consecutive members)."""
    from clinical_nlp.consensus.relations import binary_relations
    from clinical_nlp.export import read_hf_dataset, write_hf_dataset

    docs = read_jsonl(shared_corpora / "chia" / "train.jsonl", allow_empty=True)
    n_links = sum(len(binary_relations(d.relations)) for d in docs)
    assert n_links > 12_000
    links = lambda ds: [sorted(binary_relations(d.relations)) for d in ds]  # noqa: E731
    write_brat(docs, tmp_path / "brat")
    assert _strip_equiv_ids(read_brat(tmp_path / "brat", allow_empty=True)) == _strip_equiv_ids(docs)
    write_docbin(docs, tmp_path / "all.spacy")
    assert [d.relations for d in read_docbin(tmp_path / "all.spacy", allow_empty=True)] == [d.relations for d in docs]
    write_dataframe(docs, tmp_path / "all.parquet")
    assert [d.relations for d in read_dataframe(tmp_path / "all.parquet")] == [d.relations for d in docs]
    write_hf_dataset({"train": docs}, tmp_path / "hf")
    assert links(read_hf_dataset(tmp_path / "hf")["train"]) == links(docs)


def test_docbin_relations_point_into_the_span_group(corpora_dir, tmp_path):
    """spaCy users find each relation's head and tail in doc.spans['clinical_nlp'] without our reader."""
    import spacy
    from spacy.tokens import DocBin

    docs = [d for d in read_jsonl(corpora_dir / "chia" / "train.jsonl", allow_empty=True) if d.relations][:5]
    write_docbin(docs, tmp_path / "a.spacy")
    sdocs = list(DocBin().from_disk(tmp_path / "a.spacy").get_docs(spacy.blank("en").vocab))
    for doc, sdoc in zip(docs, sdocs, strict=True):
        group = sdoc.spans["clinical_nlp"]
        rels = json.loads(sdoc.user_data["clinical_nlp_relations"])
        by_id = {s.id: s for s in doc.spans}
        for r in rels:
            head, tail = group[r["head"]], group[r["tail"]]
            assert (head.kb_id_, tail.kb_id_) == (r["arg1"], r["arg2"])
            assert head.start_char == by_id[r["arg1"]].start
