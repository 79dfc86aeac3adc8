"""The assertion model under ONNX Runtime: same word pieces and logits as torch, checked weights, no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clinical_nlp.errors import ConfigError
from clinical_nlp.models.assertion_onnx import GRAPH_FILE, OnnxAssertionModel, export_graph, onnx_available
from clinical_nlp.models.assertion_transformer import (
    CLASSES,
    DEFAULT_TRANSFORMER_DIR,
    META_FILE,
    TransformerAssertionModel,
)
from clinical_nlp.pipeline.assertion_accurate import load_transformer

ROWS = [
    ("No fever today.", 3, 8),
    ("History of diabetes mellitus in the past year, now well controlled.", 11, 28),
    ("Her mother had breast cancer.", 15, 28),
    # longer than the 96 word pieces kept: truncation must match the torch tokenizer's
    ("Patient reports chest pain; " + "a-b-c-" * 60 + " no dyspnea.", 16, 26),
    ("Return if you develop chest pain or shortness of breath.", 22, 32),
]
SECTIONS = [None, "past medical history", "family history", None, "plan"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[TransformerAssertionModel, Path]:
    """A fresh (random top, one layer) model saved and exported to a temporary directory."""
    model = TransformerAssertionModel.fresh(top_layers=1, seed=3)
    path = model.save(tmp_path_factory.mktemp("assertion-onnx"))
    export_graph(model, path)
    return model, path


def test_export_writes_a_small_graph_and_records_it(exported) -> None:
    _, path = exported
    meta = json.loads((path / META_FILE).read_text())
    assert (path / GRAPH_FILE).stat().st_size < 500_000  # the weights are not in it
    sources = set(meta["onnx"]["weights"].values())
    assert any(s.startswith("base:encoder.layer.4.") for s in sources)  # frozen layers come from the base
    assert not any(s.startswith("base:encoder.layer.5.") for s in sources)  # the fine-tuned one does not
    assert any(s.startswith("top:layers.0.") for s in sources) and "top:heads.negation.weight" in sources


def test_same_word_pieces_and_concept_masks_as_torch(exported) -> None:
    model, path = exported
    onnx = OnnxAssertionModel.load(path)
    ref = model.encode(ROWS, SECTIONS)
    got = onnx.encode(ROWS, SECTIONS)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert np.array_equal(ref["enc"][key].numpy(), got[key]), key
    assert np.array_equal(ref["concept"].numpy(), got["concept"])
    assert got["input_ids"].shape[1] == 96


def test_same_logits_as_torch_in_any_batch_size(exported) -> None:
    model, path = exported
    onnx = OnnxAssertionModel.load(path)
    ref = model.logits(ROWS, sections=SECTIONS)
    for batch_size in (1, 2, 64):
        got = onnx.logits(ROWS, batch_size=batch_size, sections=SECTIONS)
        for a in CLASSES:
            assert np.abs(ref[a] - got[a]).max() < 1e-3, (a, batch_size)  # float32 sums, padding
    probs = onnx.predict_proba(ROWS)
    assert all(abs(sum(p[a].values()) - 1) < 1e-6 for p in probs for a in CLASSES)
    assert onnx.name == model.name


def test_tampered_missing_or_stale_graph_is_refused(exported, tmp_path: Path) -> None:
    model, path = exported
    copy = tmp_path / "m"
    copy.mkdir()
    for f in path.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    with (copy / GRAPH_FILE).open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ConfigError, match="hash differs"):
        OnnxAssertionModel.load(copy)
    (copy / GRAPH_FILE).unlink()
    assert not onnx_available(copy)
    with pytest.raises(ConfigError, match="no ONNX graph"):
        OnnxAssertionModel.load(copy)
    with pytest.raises(ConfigError, match="not found"):
        OnnxAssertionModel.load(tmp_path / "nowhere")
    (copy / GRAPH_FILE).write_bytes((path / GRAPH_FILE).read_bytes())
    meta = json.loads((copy / META_FILE).read_text())
    meta["onnx"]["weights"]["top.heads.negation.weight"] = "top:heads.nowhere.weight"
    (copy / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="heads.nowhere"):
        OnnxAssertionModel.load(copy)


def test_saving_a_model_removes_a_graph_exported_for_an_earlier_one(exported, tmp_path: Path) -> None:
    model, path = exported
    target = tmp_path / "m"
    model.save(target)
    export_graph(model, target)
    assert onnx_available(target)
    model.save(target)
    assert not (target / GRAPH_FILE).exists() and "onnx" not in json.loads((target / META_FILE).read_text())
    assert isinstance(load_transformer(str(target)), TransformerAssertionModel)  # falls back to torch


@pytest.mark.skipif(not onnx_available(DEFAULT_TRANSFORMER_DIR), reason="shipped graph not built (make model)")
def test_shipped_accurate_mode_runs_without_torch() -> None:
    """The default (accurate) mode's process never imports torch or transformers (their import is ~4 s)."""
    code = (
        "import sys\n"
        "from clinical_nlp.pipeline.assertion import classify_assertions, resolve_mode\n"
        "assert resolve_mode(None) == 'accurate'\n"
        "out = classify_assertions([('Mother had breast cancer.', 11, 24), ('No fever.', 3, 8)], details=True)\n"
        "assert out[0]['experiencer'] == 'family' and out[1]['negation'] == 'negated', out\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
    assert isinstance(load_transformer(None), OnnxAssertionModel)
