"""Signal adapter on real WFDB records (shared corpora: QT Database and wfdb-python samples)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from clinical_nlp.cli.app import app
from clinical_nlp.consensus.adapters.signal import (
    compare,
    consensus_events,
    read_events,
    record_report,
)
from clinical_nlp.consensus.agreement import ConsensusError

pytestmark = pytest.mark.integration
pytest.importorskip("wfdb")


@pytest.fixture(scope="module")
def signals(shared_corpora, skip_unless_available):
    path = shared_corpora / "signals"
    if not path.exists():
        skip_unless_available("signals corpus not present")
    return path


@pytest.mark.parametrize(
    "record,n_q1,n_q2,exact_beats", [("sel100", 30, 30, 30), ("sel103", 30, 30, 24), ("sel213", 71, 70, 67)]
)
def test_qtdb_cardiologists(signals, record, n_q1, n_q2, exact_beats):
    rep = compare(read_events(signals / "qtdb" / record, "q1c"), read_events(signals / "qtdb" / record, "q2c"))
    beat = rep["types"]["beat"]
    assert (beat["n_ref"], beat["n_test"]) == (n_q1, n_q2)
    assert beat["exact"] == exact_beats
    assert beat["ppv"] == 1.0 and beat["matched"] == n_q2
    assert "on:p" not in rep["types"]  # cardiologist 2 marks no P waves: not compared


def test_qtdb_t_wave_end_disagreement(signals):
    q = signals / "qtdb"
    t100 = compare(read_events(q / "sel100", "q1c"), read_events(q / "sel100", "q2c"))["types"]["off:t"]
    assert t100["mean_diff_ms"] == 0.0 and t100["matched"] == 30
    t213 = compare(read_events(q / "sel213", "q1c"), read_events(q / "sel213", "q2c"))["types"]["off:t"]
    assert 30 < t213["mean_diff_ms"] < 60 and t213["max_abs_diff_ms"] > 100  # real disagreement


def test_mitdb_100_constant_offset(signals):
    atr = read_events(signals / "wfdb_sample" / "100", "atr")
    qrs = read_events(signals / "wfdb_sample" / "100", "qrs")
    beat = compare(atr, qrs, tolerance_ms=150)["types"]["beat"]
    assert beat["se"] == 1.0 and beat["ppv"] == 1.0 and beat["exact"] == 0
    assert beat["mean_diff_ms"] == pytest.approx(-35, abs=1.5)


def test_mixed_sampling_rates_in_seconds(signals):
    rep = record_report(signals / "wfdb_sample" / "03700181", ["gqrsh", "gqrsl", "sqrs"])
    assert rep["fs"] == {"gqrsh": 500.0, "gqrsl": 125.0, "sqrs": 250.0}
    pairs = {(p["ref"], p["test"]): p["types"]["beat"] for p in rep["pairs"]}
    assert pairs[("gqrsh", "gqrsl")]["se"] == pytest.approx(0.935, abs=0.001)
    assert pairs[("gqrsh", "gqrsl")]["ppv"] == pytest.approx(0.962, abs=0.001)
    assert pairs[("gqrsh", "sqrs")]["se"] == pytest.approx(0.977, abs=0.001)
    assert pairs[("gqrsh", "sqrs")]["ppv"] == pytest.approx(0.941, abs=0.001)
    assert 1100 < rep["consensus"]["events"] < 1200


def test_abp_vs_ecg_needs_lag_alignment(signals):
    wqrs = read_events(signals / "wfdb_sample" / "12726", "wqrs")
    wabp = read_events(signals / "wfdb_sample" / "12726", "wabp")
    raw = compare(wqrs, wabp)["types"]["beat"]
    assert raw["matched"] == 0 and raw["n_ref"] == 3653
    aligned = compare(wqrs, wabp, lag="auto")["types"]["beat"]
    assert 150 < aligned["lag_ms"] < 300
    assert aligned["se"] > 0.95 and aligned["ppv"] > 0.95


def test_refuses_unrelated_event_types(signals):
    q1c = read_events(signals / "qtdb" / "sel100", "q1c")
    with pytest.raises(ConsensusError, match="no corresponding event types"):
        compare(q1c, q1c, types=["notatype"])


@pytest.mark.parametrize("ext", ["hea", "DAT"])
def test_a_records_header_or_signal_file_is_not_an_annotator(signals, ext):
    from clinical_nlp.errors import InputFormatError

    # wfdb.rdann reads a header's text as beats and waves (79, 7, 5 on sel100) without complaint
    with pytest.raises(InputFormatError, match=r"sel100\.(hea|DAT) is a WFDB (header|signal file), not an annotation"):
        read_events(signals / "qtdb" / "sel100", ext)


def test_consensus_events_identical_annotators(signals):
    ev = read_events(signals / "wfdb_sample" / "100", "qrs")
    twin = type(ev)(ev.record, "twin", ev.times.copy(), ev.types.copy(), ev.fs)
    cons = consensus_events([ev, twin])
    assert len(cons) == len(ev.times)
    assert np.allclose(np.sort(cons["time_s"].to_numpy()), np.round(ev.times, 3), atol=1e-3)


def test_cli_signal(signals, tmp_path):
    out = tmp_path / "sig.json"
    res = CliRunner().invoke(
        app,
        [
            "consensus",
            "signal",
            "--record",
            str(signals / "qtdb" / "sel100"),
            "--annotators",
            "q1c,q2c",
            "--tolerance-ms",
            "150",
            "--output",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert out.exists() and "consensus events" in res.output
