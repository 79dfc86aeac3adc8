"""The MiniLM assertion model (training, calibration, save/load) and the accurate mode."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp.errors import ConfigError
from clinical_nlp.models.assertion_training import TrainConfig, class_f1, train_transformer
from clinical_nlp.models.assertion_transformer import (
    CLASSES,
    DEFAULT_TRANSFORMER_DIR,
    META_FILE,
    WEIGHTS_FILE,
    TransformerAssertionModel,
    fit_temperature,
    marked,
    softmax,
)
from clinical_nlp.pipeline import assertion as A
from clinical_nlp.pipeline.assertion_accurate import blend, classify_accurate, needs_transformer

FINDINGS = ["fever", "cough", "rash", "edema", "chest pain", "nausea", "headache", "dyspnea", "wheezing", "syncope"]


def _rows(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        finding = rnd.choice(FINDINGS)
        negated = i % 2 == 0
        head = (
            rnd.choice(["Patient denies ", "No ", "Negative for "])
            if negated
            else rnd.choice(["Patient has ", "Reports ", "Positive for "])
        )
        text = f"{head}{finding} today."
        rows.append(
            {
                "text": text,
                "start": len(head),
                "end": len(head) + len(finding),
                "negation": "negated" if negated else "affirmed",
                "temporality": "recent",
                "experiencer": "patient",
            }
        )
    return rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[TransformerAssertionModel, Path]:
    model, history = train_transformer(
        _rows(48, 0),
        val_rows=_rows(16, 1),
        config=TrainConfig(top_layers=1, epochs=10, batch_size=8, lr_layers=3e-4, lr_heads=5e-3),
        progress=False,
    )
    assert len(history["val_score"]) == 10
    path = model.save(tmp_path_factory.mktemp("assertion-minilm"))
    return model, path


def test_tiny_model_learns_negation(tiny) -> None:
    model, _ = tiny
    rows = _rows(20, 7)
    probs = model.predict_proba([(r["text"], r["start"], r["end"]) for r in rows])
    pred = [max(p["negation"], key=p["negation"].get) for p in probs]
    assert class_f1([r["negation"] for r in rows], pred, "negated") >= 0.85
    for p in probs:
        for attr, classes in CLASSES.items():
            assert set(p[attr]) == set(classes)
            assert abs(sum(p[attr].values()) - 1.0) < 1e-5


def test_save_load_roundtrip_and_small_files(tiny) -> None:
    model, path = tiny
    again = TransformerAssertionModel.load(path)
    rows = [(r["text"], r["start"], r["end"]) for r in _rows(6, 3)]
    a, b = model.predict_proba(rows), again.predict_proba(rows)
    for x, y in zip(a, b, strict=True):
        for attr in CLASSES:
            assert np.allclose(list(x[attr].values()), list(y[attr].values()), atol=0.02)  # fp16 weights
    meta = json.loads((path / META_FILE).read_text())
    assert meta["top_layers"] == 1 and meta["base_weights"] and set(meta["temperatures"]) == set(CLASSES)
    assert (path / WEIGHTS_FILE).stat().st_size < 4_000_000  # one layer + heads, fp16
    assert again.name.startswith("assertion-minilm@0+")


def test_load_refuses_other_base_weights(tiny, tmp_path: Path) -> None:
    _, path = tiny
    meta = json.loads((path / META_FILE).read_text())
    meta["base_weights"] = "0" * 16
    other = tmp_path / "m"
    other.mkdir()
    (other / WEIGHTS_FILE).write_bytes((path / WEIGHTS_FILE).read_bytes())
    (other / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="base weights"):
        TransformerAssertionModel.load(other)


def test_missing_and_broken_model_dirs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        TransformerAssertionModel.load(tmp_path)
    (tmp_path / META_FILE).write_text("{not json")
    (tmp_path / WEIGHTS_FILE).write_bytes(b"")
    with pytest.raises(ConfigError, match="not a clinical-nlp"):
        TransformerAssertionModel.load(tmp_path)


def test_unknown_gold_value_is_refused() -> None:
    rows = _rows(4, 0)
    rows[0]["temporality"] = "future"
    with pytest.raises(ValueError, match="unknown temporality value"):
        train_transformer(rows, config=TrainConfig(top_layers=1, epochs=1), progress=False)


def test_temperature_softens_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3))
    logits[np.arange(300), gold] += 1.0
    logits *= 6.0  # right often, far too sure
    t = fit_temperature(logits, gold.tolist())
    assert t > 1.5
    nll = lambda T: -np.log(softmax(logits / T)[np.arange(300), gold]).mean()  # noqa: E731
    assert nll(t) < nll(1.0)


@settings(max_examples=60, deadline=None)
@given(
    st.text(alphabet="abc .,\n", max_size=300),
    st.text(alphabet="xyz", min_size=1, max_size=20),
    st.text(alphabet="abc .,", max_size=300),
    st.one_of(st.none(), st.sampled_from(["Family History", "PAST MEDICAL HISTORY"])),
)
def test_marked_window_keeps_the_concept(left: str, concept: str, right: str, section) -> None:
    text = left + concept + right
    out, s, e = marked(text, len(left), len(left) + len(concept), section)
    assert out[s:e] == concept
    assert out[:s].endswith("<< ") and out[e:].startswith(" >>")
    assert len(out) <= 2 * 200 + len(concept) + 60


def test_blend_and_routing() -> None:
    lin = {
        "negation": {"affirmed": 0.6, "negated": 0.4},
        "temporality": {"recent": 1.0},
        "experiencer": {"patient": 1.0},
    }
    tr = {
        "negation": {"affirmed": 0.0, "negated": 1.0, "possible": 0.0},
        "temporality": {"recent": 1.0, "historical": 0.0, "hypothetical": 0.0},
        "experiencer": {"patient": 1.0, "family": 0.0, "other": 0.0},
    }
    out = blend(lin, tr, 0.5)
    assert out["negation"] == pytest.approx({"affirmed": 0.3, "negated": 0.7, "possible": 0.0})
    assert needs_transformer(lin, 0.9) and not needs_transformer(lin, 0.6)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown assertion mode"):
        A.classify_assertions([("No fever.", 3, 8)], mode="fast")
    assert A.resolve_mode("accurate", rules_only=True) == "rules"


def test_accurate_mode_with_any_model_routes_only_unsure_rows(tiny) -> None:
    model, _ = tiny
    linear = A.load_model(None)
    rows = [
        ("No fever today.", 3, 8),
        ("Mother had breast cancer.", 11, 24),
        ("Possible pneumonia on the film.", 9, 18),
    ]
    everything = classify_accurate(rows, linear=linear, transformer=model, route_below=1.01)
    assert all(model.name in r["source"] for r in everything)
    nothing = classify_accurate(rows, linear=linear, transformer=model, route_below=0.0)
    assert not any(model.name in r["source"] for r in nothing)
    plain = A.classify_assertions(rows, details=True, mode="linear")
    assert [{a: r[a] for a in A.ATTRIBUTES} for r in nothing] == [{a: r[a] for a in A.ATTRIBUTES} for r in plain]


shipped = pytest.mark.skipif(
    not (DEFAULT_TRANSFORMER_DIR / WEIGHTS_FILE).exists(), reason="run `make model` to build the shipped model"
)


@shipped
@pytest.mark.parametrize(
    ("text", "concept", "attr", "value"),
    [
        ("No evidence of pneumonia.", "pneumonia", "negation", "negated"),
        ("History of myocardial infarction in 2009.", "myocardial infarction", "temporality", "historical"),
        ("Return if you develop chest pain.", "chest pain", "temporality", "hypothetical"),
        ("Her mother had breast cancer.", "breast cancer", "experiencer", "family"),
        ("The patient has a cough.", "cough", "negation", "affirmed"),
    ],
)
def test_shipped_accurate_mode_classic_cases(text: str, concept: str, attr: str, value: str) -> None:
    start = text.index(concept)
    out = A.classify_assertions([(text, start, start + len(concept))], mode="accurate")[0]
    assert out[attr] == value


@shipped
def test_shipped_model_is_small_and_its_choices_are_recorded() -> None:
    size = sum(f.stat().st_size for f in DEFAULT_TRANSFORMER_DIR.iterdir())
    assert size < 10_000_000
    meta = json.loads((DEFAULT_TRANSFORMER_DIR / META_FILE).read_text())
    assert 0 < meta["route_below"] <= 1.01 and 0 < meta["weight"] < 1
    assert meta["cv"]["cv_on"].startswith(tuple("0123456789"))
