"""The MiniLM PHI tagger (windows, piece labels, training, save/load) and its ensemble with the CRF."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp.deid.core import Detector
from clinical_nlp.deid.model import MODEL_LABELS, tokenize
from clinical_nlp.deid.transformer import META_FILE, WEIGHTS_FILE, EnsembleTagger, TransformerPHITagger
from clinical_nlp.deid.transformer_training import IGNORE, PHITrainConfig, piece_labels, train_phi_transformer
from clinical_nlp.errors import ConfigError

SURNAMES = ["Lopez", "Nguyen", "Kowalski", "Okafor", "Brennan", "Haddad", "Lindqvist", "Moreau", "Tanaka", "Silva"]
FILLERS = ["Vitals stable.", "Lungs clear.", "Tolerating diet.", "No acute events.", "Plan to continue."]


def _notes(n: int, seed: int) -> list[dict]:
    """Notes in which the word after "Dr." is a clinician's name (HCPName), the rest is not PHI."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        name = rnd.choice(SURNAMES)
        head = f"{rnd.choice(FILLERS)} Seen by Dr. "
        text = f"{head}{name} this morning. {rnd.choice(FILLERS)}"
        out.append(
            {
                "id": f"n{i}",
                "text": text,
                "spans": [{"start": len(head), "end": len(head) + len(name), "label": "HCPName"}],
            }
        )
    return out


@pytest.fixture(scope="module")
def fresh() -> TransformerPHITagger:
    return TransformerPHITagger.fresh(top_layers=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[TransformerPHITagger, Path]:
    cfg = PHITrainConfig(top_layers=1, epochs=6, batch_size=8, lr_layers=3e-4, lr_head=5e-3, copies=1)
    model = train_phi_transformer(_notes(40, 0), config=cfg, progress=False)
    return model, model.save(tmp_path_factory.mktemp("deid-minilm"))


def test_every_token_gets_its_first_piece_in_every_window(fresh) -> None:
    text = " ".join(f"O'Brien{i} seen 3/4/2010, BP 120/80." for i in range(60))  # several windows
    toks = tokenize(text)
    win = fresh.windows(text)
    assert win.offsets.shape[0] > 1
    pieces = win.first_pieces(toks)
    assert {i for i, _, _ in pieces} == set(range(len(toks)))
    for i, w, p in pieces:
        assert win.offsets[w, p, 0] == toks[i][0]  # the piece starts where the token does


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet="abcXYZ 0123.,-'\n", min_size=0, max_size=200))
def test_first_pieces_lie_inside_their_tokens(text: str) -> None:
    toks = tokenize(text)
    if not text.strip():
        return
    win = TransformerPHITagger.fresh(top_layers=1).windows(text)
    for i, w, p in win.first_pieces(toks):
        a, b = toks[i]
        assert a <= win.offsets[w, p, 0] < b


def test_piece_labels_mark_first_pieces_only(fresh) -> None:
    note = _notes(1, 3)[0]
    win = fresh.windows(note["text"])
    y = piece_labels(win, note["text"], note["spans"])
    hcp = MODEL_LABELS.index("HCPName")
    assert (y == hcp).sum() == 1  # one surname, one first piece
    n_words = len(tokenize(note["text"]))
    assert ((y != IGNORE).sum()) == n_words
    assert (y[win.offsets[..., 1] == 0] == IGNORE).all()  # special tokens and padding carry no label


def test_tiny_model_learns_the_context_not_the_names(tiny) -> None:
    model, _ = tiny
    text = "Lungs clear. Seen by Dr. Zabrowski this morning. Vitals stable."  # a surname it never saw
    toks = tokenize(text)
    p = model.proba(text, toks)
    o = MODEL_LABELS.index("O")
    at = [text[a:b] for a, b in toks].index("Zabrowski")
    assert p[at, o] < 0.5
    best = p[at].copy()
    best[o] = -1.0
    assert MODEL_LABELS[int(best.argmax())] == "HCPName"
    others = [i for i, (a, b) in enumerate(toks) if text[a:b] in ("Lungs", "morning", "Vitals")]
    assert (p[others, o] > 0.5).all()
    assert np.allclose(p.sum(1), 1.0, atol=1e-5)


def test_save_load_roundtrip(tiny) -> None:
    model, path = tiny
    again = TransformerPHITagger.load(path)
    note = _notes(1, 9)[0]
    toks = tokenize(note["text"])
    assert np.allclose(model.proba(note["text"], toks), again.proba(note["text"], toks), atol=0.02)  # fp16
    meta = json.loads((path / META_FILE).read_text())
    assert meta["labels"] == list(MODEL_LABELS) and meta["top_layers"] == 1 and meta["base_weights"]
    assert (path / WEIGHTS_FILE).stat().st_size < 4_000_000
    assert again.name.startswith("deid-minilm@1+")


def test_load_refuses_other_base_weights_and_labels(tiny, tmp_path: Path) -> None:
    _, path = tiny
    for field, value, message in (("base_weights", "0" * 16, "base weights"), ("labels", ["O", "Name"], "labels")):
        meta = json.loads((path / META_FILE).read_text())
        meta[field] = value
        other = tmp_path / field
        other.mkdir()
        (other / WEIGHTS_FILE).write_bytes((path / WEIGHTS_FILE).read_bytes())
        (other / META_FILE).write_text(json.dumps(meta))
        with pytest.raises(ConfigError, match=message):
            TransformerPHITagger.load(other)
    with pytest.raises(ConfigError, match="not found"):
        TransformerPHITagger.load(tmp_path / "nothing")


class _Fixed:
    """A tagger answering fixed P(O) values (other labels: HCPName)."""

    def __init__(self, p_o: list[float], labels: tuple[str, ...] = MODEL_LABELS):
        self.p_o = p_o
        self.labels = labels

    def proba(self, text, toks, only=None):
        rows = range(len(toks)) if only is None else only
        out = np.zeros((len(rows), len(self.labels)))
        for r, i in enumerate(rows):
            out[r, self.labels.index("O")] = self.p_o[i]
            out[r, self.labels.index("HCPName")] = 1 - self.p_o[i]
        return out


def test_ensemble_takes_the_minilm_only_where_it_is_sure_and_surer() -> None:
    crf = _Fixed([0.999, 0.1, 0.999, 0.999], labels=tuple(reversed(MODEL_LABELS)))  # another label order
    minilm = _Fixed([0.2, 0.05, 0.7, 0.999])
    toks = [(0, 1), (2, 3), (4, 5), (6, 7)]
    p = EnsembleTagger(crf, minilm, strong=0.5).proba("a b c d", toks)  # type: ignore[arg-type]
    o = crf.labels.index("O")
    assert p[:, o].tolist() == pytest.approx([0.2, 0.05, 0.999, 0.999])  # sure: taken; unsure (0.7): CRF kept
    assert p[:, crf.labels.index("HCPName")].tolist() == pytest.approx([0.8, 0.95, 0.001, 0.001])
    assert EnsembleTagger(crf, minilm, strong=0.0).proba("a b c d", toks)[:, o].tolist() == pytest.approx(  # type: ignore[arg-type]
        [0.999, 0.1, 0.999, 0.999]
    )
    floor = EnsembleTagger(crf, minilm, strong=0.5, crf_below=0.5).proba("a b c d", toks)  # type: ignore[arg-type]
    assert floor[:, o].tolist() == pytest.approx([0.999, 0.05, 0.999, 0.999])  # only where the CRF doubts too
    with pytest.raises(ConfigError, match="labels"):
        EnsembleTagger(crf, _Fixed([0.5] * 4, labels=("O", "HCPName")))  # type: ignore[arg-type]


def test_detector_with_the_ensemble_redacts_what_only_the_minilm_finds() -> None:
    text = "Lungs clear. Zabrowski came this morning."
    toks = tokenize(text)
    at = [text[a:b] for a, b in toks].index("Zabrowski")
    crf = _Fixed([0.9999] * len(toks))  # not PHI for the CRF (threshold 0.98), a doubt the MiniLM may settle
    minilm = _Fixed([0.01 if i == at else 0.99999 for i in range(len(toks))])
    crf_only = Detector(crf, review_below=None).detect(text)  # type: ignore[arg-type]
    both = Detector(EnsembleTagger(crf, minilm), review_below=None).detect(text)  # type: ignore[arg-type]
    assert not any(s.start == toks[at][0] for s in crf_only)
    assert any(s.start == toks[at][0] and s.label == "HCPName" for s in both)


def test_shipped_minilm_is_small_and_records_its_choices() -> None:
    from dataclasses import asdict

    from clinical_nlp.deid.transformer import (
        DEFAULT_CRF_BELOW,
        DEFAULT_PHI_TRANSFORMER_DIR,
        DEFAULT_STRONG,
        detector_for,
    )

    meta = json.loads((DEFAULT_PHI_TRANSFORMER_DIR / META_FILE).read_text())
    assert meta["config"] == asdict(PHITrainConfig())
    assert (meta["strong"], meta["crf_below"]) == (DEFAULT_STRONG, DEFAULT_CRF_BELOW)
    assert meta["corpus_sha256"] and meta["n_notes"] > 1000
    assert (DEFAULT_PHI_TRANSFORMER_DIR / WEIGHTS_FILE).stat().st_size < 10_000_000
    det = detector_for("ensemble")
    assert "MiniLM" in det.method and f"P(O) < {DEFAULT_STRONG} and the CRF's P(O) < {DEFAULT_CRF_BELOW}" in det.method
    text = "Family meeting today with the patient's daughter Marisol and Dr. Abernathy."
    found = {text[s.start : s.end] for s in det.detect(text)}
    assert {"Marisol", "Abernathy"} <= found
    with pytest.raises(ConfigError, match="unknown detector"):
        detector_for("bert")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        detector_for("ensemble", strong=2.0)
