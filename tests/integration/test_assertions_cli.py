"""`clinical-nlp assertions`: the CLI contract on real NegEx/ConText rows and on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinical_nlp.cli.app import app

pytestmark = pytest.mark.integration
runner = CliRunner()
VALUES = {
    "negation": {"affirmed", "negated", "possible"},
    "temporality": {"recent", "historical", "hypothetical"},
    "experiencer": {"patient", "family", "other"},
}


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(*args: str):
    return runner.invoke(app, ["assertions", *args, "--no-progress"])


@pytest.mark.parametrize("extra", [[], ["--rules-only"], ["--mode", "accurate"]])
def test_contract_on_real_rows(shared_corpora: Path, tmp_path: Path, extra: list[str]) -> None:
    src = shared_corpora / "negex_context" / "dev.jsonl"
    rows = [json.loads(x) for x in src.read_text(encoding="utf-8").splitlines()[:200]]
    out = tmp_path / "out.jsonl"
    res = _run("--input", str(src), "--output", str(out), *extra)
    assert res.exit_code == 0, res.output
    got = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(got) == 1406
    assert [g["id"] for g in got[:200]] == [r["id"] for r in rows]
    for g in got:
        for attr, allowed in VALUES.items():
            assert g[attr] in allowed
    gold_neg = [r["negation"] for r in rows]
    pred_neg = [g["negation"] for g in got[:200]]
    acc = sum(a == b for a, b in zip(gold_neg, pred_neg)) / len(rows)
    assert acc > 0.9


def test_model_option_and_details(tmp_path: Path) -> None:
    from clinical_nlp.pipeline.assertion import DEFAULT_MODEL_DIR

    inp = _write(tmp_path / "in.jsonl", [{"id": "a", "text": "No fever.", "start": 3, "end": 8, "concept": "fever"}])
    out = tmp_path / "out.jsonl"
    res = _run("--input", str(inp), "--output", str(out), "--model", str(DEFAULT_MODEL_DIR), "--details")
    assert res.exit_code == 0, res.output
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["id"] == "a" and row["negation"] == "negated" and row["source"].startswith("model:")


@pytest.mark.parametrize(
    "rows,needle",
    [
        (
            [
                {"id": "ok", "text": "Fever.", "start": 0, "end": 5},
                {"id": "r2", "text": "No fever", "start": 3, "end": 40},
            ],
            "r2",
        ),
        ([{"id": "r1", "text": "No fever", "start": 0, "end": 2, "concept": "fever"}], "not the concept"),
        ([{"id": "r1", "text": "", "start": 0, "end": 1}], "empty text"),
        ([{"id": "r1", "text": "No fever", "end": 8}], "no 'start'"),
        ([{"id": "big", "text": "fever " * 1_700_000, "start": 0, "end": 5}], "exceeds"),
        ([], "empty input"),
        (
            [
                {"id": "r1", "text": "No fever", "start": 3, "end": 8},
                {"id": "r1", "text": "Fever.", "start": 0, "end": 5},
            ],
            "duplicate id 'r1' (first on line 1)",
        ),
    ],
)
def test_bad_input_clear_error_no_output(tmp_path: Path, rows: list[dict], needle: str) -> None:
    inp = _write(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    res = _run("--input", str(inp), "--output", str(out))
    assert res.exit_code != 0
    assert needle in str(res.exception) + res.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out.jsonl.*"))


def test_non_utf8_input(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b'{"id": "r1", "text": "caf\xe9 fever", "start": 5, "end": 10}\n')
    out = tmp_path / "out.jsonl"
    res = _run("--input", str(inp), "--output", str(out))
    assert res.exit_code != 0
    assert "UTF-8" in str(res.exception) and ":1" in str(res.exception)
    assert not out.exists()


def test_help_documents_contract() -> None:
    res = runner.invoke(app, ["assertions", "--help"])
    assert res.exit_code == 0
    for word in ("--input", "--output", "--model", "--rules-only", "negation", "temporality", "experiencer"):
        assert word in res.output


def test_accurate_mode_names_the_transformer_where_it_joined(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "text": "No fever today.", "start": 3, "end": 8},
        {"id": "b", "text": "He was treated for pneumonia years ago.", "start": 19, "end": 28},
    ]
    out = tmp_path / "o.jsonl"
    res = _run(
        "--input", str(_write(tmp_path / "in.jsonl", rows)), "--output", str(out), "--mode", "accurate", "--details"
    )
    assert res.exit_code == 0, res.output
    got = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [g["id"] for g in got] == ["a", "b"] and got[0]["negation"] == "negated"
    assert all(g["source"].startswith("model:assertion-linear") for g in got)


def test_unknown_mode_is_a_clear_error(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.jsonl", [{"id": "a", "text": "No fever.", "start": 3, "end": 8}])
    res = _run("--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--mode", "fastest")
    assert res.exit_code != 0  # the console script turns this ConfigError into exit code 2
    assert "unknown assertion mode 'fastest'" in str(res.exception)
    assert not (tmp_path / "o.jsonl").exists()
