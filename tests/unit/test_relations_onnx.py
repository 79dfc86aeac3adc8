"""The relation pair scorer under ONNX Runtime: the torch scorer's probabilities, checked files, no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_relations import _row

from clinical_nlp.errors import ConfigError
from clinical_nlp.models import relations as R
from clinical_nlp.models.onnx_graph import GRAPH_FILE
from clinical_nlp.models.relations_minilm import MiniLMPairScorer, PairTrainConfig, train_pair_scorer
from clinical_nlp.models.relations_onnx import OnnxPairScorer, load_pair_scorer
from clinical_nlp.models.top_layers import META_FILE


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A scorer fine-tuned two epochs on synthetic criteria, saved (with its graph) to a temporary directory."""
    rows = [_row(i) for i in range(20)]
    linear = R.fit(rows[:14], 1.0)
    scorer, _ = train_pair_scorer(rows[:14], linear, PairTrainConfig(top_layers=1, epochs=2, batch_lines=8))
    path = scorer.save(tmp_path_factory.mktemp("rel-onnx") / "minilm")
    test = rows[14:] + [{**rows[15], "text": rows[15]["text"] + " " + "word " * 300}]  # past the 160 pieces kept
    return scorer, path, test, [R.candidates(r, linear.allowed) for r in test]


def test_save_writes_a_small_graph_whose_fine_tuned_layers_come_from_the_scorer(saved) -> None:
    _, path, _, _ = saved
    meta = json.loads((path / META_FILE).read_text())
    assert (path / GRAPH_FILE).stat().st_size < 500_000
    sources = set(meta["onnx"]["weights"].values())
    assert any(s.startswith("base:encoder.layer.4.") for s in sources)
    assert not any(s.startswith("base:encoder.layer.5.") for s in sources)
    assert any(s.startswith("top:layers.0.") for s in sources)
    assert isinstance(load_pair_scorer(path), OnnxPairScorer)


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_same_probabilities_as_torch_in_any_batch_size(saved, batch) -> None:
    scorer, path, test, cands = saved
    ref = scorer.pair_probs(test, cands)
    got = OnnxPairScorer.load(path).pair_probs(test, cands, batch=batch)
    assert [g.shape for g in got] == [r.shape for r in ref] and sum(len(c) for c in cands) > 20
    for r, g in zip(ref, got, strict=True):
        assert np.abs(r - g).max(initial=0.0) < 1e-4
        assert np.allclose(g.sum(1), 1.0)


def test_saving_a_loaded_scorer_copies_its_files(saved, tmp_path: Path) -> None:
    _, path, test, cands = saved
    onnx = OnnxPairScorer.load(path)
    again = OnnxPairScorer.load(onnx.save(tmp_path / "copy"))
    for a, b in zip(onnx.pair_probs(test, cands), again.pair_probs(test, cands), strict=True):
        assert np.array_equal(a, b)


def test_a_tampered_graph_or_missing_weights_are_refused(saved, tmp_path: Path) -> None:
    _, path, _, _ = saved
    copy = OnnxPairScorer.load(path).save(tmp_path / "m")
    (copy / GRAPH_FILE).write_bytes((copy / GRAPH_FILE).read_bytes() + b"\0")
    with pytest.raises(ConfigError, match="hash differs"):
        OnnxPairScorer.load(copy)
    (copy / GRAPH_FILE).unlink()
    assert isinstance(load_pair_scorer(copy), MiniLMPairScorer)  # no graph: torch runs it
    (copy / "weights.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError):
        load_pair_scorer(copy)


def test_the_shipped_relation_model_predicts_without_importing_torch() -> None:
    shipped = R.default_relation_model_dir()
    if shipped is None or not (shipped / R.MINILM_DIR / GRAPH_FILE).exists():
        pytest.skip("no shipped relation model with a MiniLM graph (run `make model`)")
    code = (
        "import sys, json\n"
        "from clinical_nlp.models.relations import load_relation_model, default_relation_model_dir\n"
        "m = load_relation_model(default_relation_model_dir())\n"
        "row = {'id': 'r', 'text': 'HbA1c > 7% within 6 months', 'spans': ["
        "{'id': 'T1', 'start': 0, 'end': 5, 'label': 'Measurement'}, {'id': 'T2', 'start': 6, 'end': 10, 'label': "
        "'Value'}, {'id': 'T3', 'start': 11, 'end': 26, 'label': 'Temporal'}]}\n"
        "links = m.predict([row])[0]\n"
        "print(json.dumps([sorted(sys.modules).count('torch'), type(m.scorer).__name__, len(links)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    torch_loaded, runtime, n_links = json.loads(out.stdout.strip().splitlines()[-1])
    assert torch_loaded == 0 and runtime == "OnnxPairScorer" and n_links >= 1
