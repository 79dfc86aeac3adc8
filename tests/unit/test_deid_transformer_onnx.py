"""The MiniLM PHI tagger under ONNX Runtime: the torch tagger's windows and logits, checked files, no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_deid_transformer import _notes

from clinical_nlp.deid.model import tokenize
from clinical_nlp.deid.transformer import DEFAULT_PHI_TRANSFORMER_DIR, TransformerPHITagger
from clinical_nlp.deid.transformer_onnx import OnnxPHITagger, load_phi_tagger
from clinical_nlp.deid.transformer_training import PHITrainConfig, train_phi_transformer
from clinical_nlp.errors import ConfigError
from clinical_nlp.models.onnx_graph import GRAPH_FILE
from clinical_nlp.models.top_layers import META_FILE

LONG = "Seen by Dr. Lopez-Haddad at 10:40; family (daughter Ana) updated by phone 410-555-0199. " * 30


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[TransformerPHITagger, Path]:
    cfg = PHITrainConfig(top_layers=1, epochs=2, batch_size=8, copies=0)
    model = train_phi_transformer(_notes(16, 1), config=cfg, progress=False)
    return model, model.save(tmp_path_factory.mktemp("deid-onnx"))


def test_save_writes_the_graph_and_loading_prefers_it(saved) -> None:
    _, path = saved
    meta = json.loads((path / META_FILE).read_text())
    assert (path / GRAPH_FILE).stat().st_size < 500_000
    assert any(s.startswith("top:head.") for s in meta["onnx"]["weights"].values())
    assert isinstance(load_phi_tagger(path), OnnxPHITagger)


@pytest.mark.parametrize("text", ["", "Dr. Lopez.", _notes(1, 5)[0]["text"], LONG])
def test_same_windows_and_word_logits_as_torch(saved, text) -> None:
    model, path = saved
    onnx = OnnxPHITagger.load(path)
    if text.strip():
        ref, got = model.windows(text), onnx.windows(text)
        assert np.array_equal(ref.enc["input_ids"].numpy(), got.enc["input_ids"])
        assert np.array_equal(ref.offsets, got.offsets)
    toks = tokenize(text)
    assert len(onnx.windows(LONG).offsets) > 3  # the long note is read in several overlapping windows
    a, b = model.word_logits(text, toks), onnx.word_logits(text, toks)
    assert a.shape == b.shape == (len(toks), len(model.labels))
    assert np.abs(a - b).max(initial=0.0) < 1e-3
    assert np.allclose(onnx.proba(text, toks).sum(1), 1.0)


def test_a_tampered_graph_is_refused_and_without_one_torch_runs(saved, tmp_path: Path) -> None:
    import shutil

    _, path = saved
    copy = tmp_path / "m"
    shutil.copytree(path, copy)
    (copy / GRAPH_FILE).write_bytes((copy / GRAPH_FILE).read_bytes()[:-10])
    with pytest.raises(ConfigError, match="hash differs"):
        load_phi_tagger(copy)
    (copy / GRAPH_FILE).unlink()
    assert isinstance(load_phi_tagger(copy), TransformerPHITagger)


def test_the_shipped_ensemble_detector_runs_without_importing_torch() -> None:
    if not (DEFAULT_PHI_TRANSFORMER_DIR / GRAPH_FILE).exists():
        pytest.skip("no shipped MiniLM PHI tagger with a graph (run `make model`)")
    code = (
        "import sys, json\n"
        "from clinical_nlp.deid.transformer import detector_for\n"
        "det = detector_for('ensemble')\n"
        "text = 'Family meeting today with the patient daughter Marisol and Dr. Abernathy.'\n"
        "found = sorted(text[s.start:s.end] for s in det.detect(text))\n"
        "print(json.dumps(['torch' in sys.modules, found]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    torch_loaded, found = json.loads(out.stdout.strip().splitlines()[-1])
    assert not torch_loaded and {"Marisol", "Abernathy"} <= set(found)
