"""Signal adapter: event annotations on physiological records (WFDB) → matched events, Se/+P, consensus.

Events are compared in **seconds** (``sample / fs`` with the fs of each annotation file, which can
differ inside one record) within a tolerance window, one-to-one, nearest first: the beat-by-beat
convention of ANSI/AAMI EC57 (150 ms for QRS). Event types are normalised (every beat symbol is a
``beat``; WFDB wave boundaries ``(``/``)`` become ``on:<peak>``/``off:<peak>``) and only
corresponding types are compared: annotators with no type in common are refused, and a constant lag
between event types (e.g. ABP pulse vs ECG QRS) can be estimated and removed with ``lag="auto"``.

Matching produces the same long frame as text and imaging (``item`` = record, ``unit`` = event
cluster, ``label`` = event type) and scores with the same core functions (``detection_prf``,
``aggregate``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from clinical_nlp.consensus.aggregation import aggregate, detection_prf
from clinical_nlp.consensus.agreement import ConsensusError, summarize
from clinical_nlp.errors import InputFormatError, MissingOptionalDependencyError

#: WFDB beat annotation symbols (ecgcodes: normal, bundle branch blocks, ectopic, paced, fusion, unclassified).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
PEAKS = frozenset("pNtuT")


@dataclass(frozen=True)
class Events:
    """One annotator's events on one record: times in seconds and normalised types."""

    record: str
    annotator: str
    times: np.ndarray
    types: np.ndarray
    fs: float

    def of_type(self, kind: str) -> np.ndarray:
        return self.times[self.types == kind]


def normalise_symbols(symbols: Sequence[str], *, waves: bool = True) -> list[str]:
    """Map WFDB symbols to event types: beats → ``beat`` (QTDB peaks keep their wave name), boundaries
    ``(``/``)`` → ``on:X``/``off:X`` for the following/preceding peak ``X``; others keep their symbol."""
    out = []
    n = len(symbols)
    for i, s in enumerate(symbols):
        s = "" if s is None or (isinstance(s, float) and np.isnan(s)) else str(s)
        if waves and s == "(":
            nxt = next((symbols[j] for j in range(i + 1, min(n, i + 3)) if symbols[j] in PEAKS), None)
            out.append(f"on:{nxt}" if nxt else "on:?")
        elif waves and s == ")":
            prv = next((symbols[j] for j in range(i - 1, max(-1, i - 3), -1) if symbols[j] in PEAKS), None)
            out.append(f"off:{prv}" if prv else "off:?")
        elif s in BEAT_SYMBOLS:
            out.append("beat")
        else:
            out.append(s or "?")
    return out


#: extensions of a record's other files (and common non-WFDB ones): never annotation files
NOT_ANNOTATIONS = {
    "hea": "WFDB header", "dat": "WFDB signal file", "mat": "WFDB signal file", "edf": "EDF signal file",
    "bdf": "BDF signal file", "wav": "audio signal file", "csv": "CSV file", "txt": "text file",
    "json": "JSON file", "xml": "XML file",
}  # fmt: skip


def read_events(record: Path | str, annotator: str) -> Events:
    """Read ``RECORD.<annotator>`` with ``wfdb.rdann``; times in seconds from that file's fs."""
    try:
        import wfdb
    except ImportError as exc:  # pragma: no cover
        raise MissingOptionalDependencyError("wfdb", "signal") from exc
    record = Path(record)
    path = Path(f"{record}.{annotator}")
    if annotator.lower() in NOT_ANNOTATIONS:  # wfdb would read their bytes as annotations without a word
        raise InputFormatError(
            f"{path.name} is a {NOT_ANNOTATIONS[annotator.lower()]}, not an annotation file: name the annotators' "
            "extensions (e.g. q1c,q2c)",
            source=str(record),
        )
    if not path.exists():
        raise InputFormatError(f"annotation file {path.name} not found", source=str(record))
    try:
        ann = wfdb.rdann(str(record), annotator)
    except Exception as exc:  # wfdb raises plain exceptions on corrupt files
        raise InputFormatError(f"cannot read WFDB annotations: {exc}", source=str(path)) from None
    fs = ann.fs
    if not fs:
        try:
            fs = wfdb.rdheader(str(record)).fs
        except Exception:
            raise InputFormatError(
                "annotation file has no sampling frequency and no header", source=str(path)
            ) from None
    order = np.argsort(ann.sample, kind="stable")
    symbols = [ann.symbol[i] for i in order]
    times = np.asarray(ann.sample, float)[order] / float(fs)
    return Events(record.name, annotator, times, np.asarray(normalise_symbols(symbols)), float(fs))


def match_times(ref: np.ndarray, test: np.ndarray, tolerance: float) -> list[tuple[int, int]]:
    """One-to-one matches (ref index, test index) with ``|t_ref - t_test| <= tolerance``, nearest first."""
    ref, test = np.asarray(ref, float), np.asarray(test, float)
    if ref.size == 0 or test.size == 0:
        return []
    order = np.argsort(test, kind="stable")
    st = test[order]
    lo = np.searchsorted(st, ref - tolerance, side="left")
    hi = np.searchsorted(st, ref + tolerance, side="right")
    counts = hi - lo
    if counts.sum() == 0:
        return []
    ri = np.repeat(np.arange(ref.size), counts)
    tj = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True) if b > a])
    dist = np.abs(ref[ri] - st[tj])
    used_r = np.zeros(ref.size, bool)
    used_t = np.zeros(test.size, bool)
    pairs = []
    for k in np.lexsort((tj, ri, dist)):
        i, j = ri[k], tj[k]
        if not used_r[i] and not used_t[j]:
            used_r[i] = used_t[j] = True
            pairs.append((int(i), int(order[j])))
    return sorted(pairs)


def estimate_lag(ref: np.ndarray, test: np.ndarray, *, max_lag: float = 1.0) -> float:
    """Median of ``nearest(test) - ref`` over reference events with a test event within ``max_lag``."""
    if ref.size == 0 or test.size == 0:
        raise ConsensusError("cannot estimate a lag between empty event lists")
    st = np.sort(test)
    idx = np.clip(np.searchsorted(st, ref), 1, st.size - 1) if st.size > 1 else np.zeros(ref.size, int)
    cand = np.stack([st[idx - 1 if st.size > 1 else idx], st[idx]])
    near = cand[np.argmin(np.abs(cand - ref), axis=0), np.arange(ref.size)]
    d = near - ref
    d = d[np.abs(d) <= max_lag]
    if d.size == 0:
        raise ConsensusError(f"no test event within {max_lag} s of a reference event: cannot align")
    return float(np.median(d))


def compare(
    ref: Events,
    test: Events,
    *,
    tolerance_ms: float = 150.0,
    types: Iterable[str] | None = None,
    lag: Literal["none", "auto"] | float = "none",
) -> dict[str, Any]:
    """Sensitivity (Se) and positive predictivity (+P) of ``test`` against ``ref`` per event type.

    Raises :class:`ConsensusError` when the two annotators share no event type (they do not
    describe the same events). ``lag="auto"`` estimates and removes a constant delay per type.
    """
    tol = tolerance_ms / 1000.0
    common = sorted(set(ref.types) & set(test.types))
    kinds = sorted(set(types)) if types is not None else common
    if not common or not set(kinds) & set(common):
        raise ConsensusError(
            f"{ref.record}: {ref.annotator} ({sorted(set(ref.types))}) and {test.annotator} "
            f"({sorted(set(test.types))}) mark no corresponding event types; refusing to compare"
        )
    out: dict[str, Any] = {
        "record": ref.record,
        "ref": ref.annotator,
        "test": test.annotator,
        "tolerance_ms": tolerance_ms,
        "types": {},
    }
    for kind in kinds:
        r, t = ref.of_type(kind), test.of_type(kind)
        shift = 0.0
        if lag == "auto":
            shift = estimate_lag(r, t)
        elif not isinstance(lag, str):
            shift = float(lag)
        t_al = t - shift
        pairs = match_times(r, t_al, tol)
        prf = detection_prf(len(r), len(t), len(pairs))
        diffs = np.array([t_al[j] - r[i] for i, j in pairs]) * 1000.0
        exact = len(match_times(r, t_al, 1e-9))
        out["types"][kind] = {
            "n_ref": len(r),
            "n_test": len(t),
            "matched": len(pairs),
            "exact": exact,
            "se": prf.recall if len(r) else None,
            "ppv": prf.precision if len(t) else None,
            "f1": prf.f1,
            "lag_ms": shift * 1000.0,
            "mean_diff_ms": float(diffs.mean()) if diffs.size else None,
            "sd_diff_ms": float(diffs.std(ddof=1)) if diffs.size > 1 else None,
            "max_abs_diff_ms": float(np.abs(diffs).max()) if diffs.size else None,
        }
    return out


def events_frame(events: Sequence[Events], *, tolerance_ms: float = 150.0) -> pd.DataFrame:
    """Long frame: events of all annotators clustered per type (chained within the tolerance).

    ``unit`` is ``"<type>@<mean time in s>"``; annotators without an event in a unit get ``__none__``.
    """
    tol = tolerance_ms / 1000.0
    rows = []
    names = [e.annotator for e in events]
    if len(set(names)) != len(names):
        raise ConsensusError(f"annotator names must be distinct, got {names}")
    kinds = sorted({k for e in events for k in set(e.types)})
    for kind in kinds:
        pts = sorted((t, e.annotator) for e in events for t in e.of_type(kind))
        clusters: list[list[tuple[float, str]]] = []
        for t, a in pts:
            c = clusters[-1] if clusters else None
            if c is not None and t - c[-1][0] <= tol and a not in {x[1] for x in c}:
                c.append((t, a))
            else:
                clusters.append([(t, a)])
        for c in clusters:
            unit = f"{kind}@{np.mean([t for t, _ in c]):.3f}"
            present = {a for _, a in c}
            for a in names:
                rows.append(
                    {
                        "item": events[0].record,
                        "annotator": a,
                        "unit": unit,
                        "label": kind if a in present else "__none__",
                    }
                )
    return pd.DataFrame(rows, columns=["item", "annotator", "unit", "label"])


def consensus_events(events: Sequence[Events], *, tolerance_ms: float = 150.0, level: float = 0.5) -> pd.DataFrame:
    """Consensus events over the clustered units: kept when at least ``level`` of the annotators marked
    them (as for consensus masks), typed by the core ``aggregate`` (majority vote); time = unit mean."""
    frame = events_frame(events, tolerance_ms=tolerance_ms)
    if frame.empty:
        return pd.DataFrame(columns=["time_s", "type", "votes"])
    agg = aggregate(frame, method="majority")
    votes = frame[frame["label"] != "__none__"].groupby("unit").size()
    rows = []
    n_ann = len(events)
    for (_, unit), _label in agg.result.items():
        if votes.get(unit, 0) / n_ann < level:
            continue
        kind, t = unit.rsplit("@", 1)
        rows.append({"time_s": float(t), "type": kind, "votes": int(votes.get(unit, 0))})
    return pd.DataFrame(rows).sort_values("time_s").reset_index(drop=True)


def record_report(
    record: Path | str,
    annotators: Sequence[str],
    *,
    tolerance_ms: float = 150.0,
    types: Iterable[str] | None = None,
    lag: Literal["none", "auto"] | float = "none",
) -> dict[str, Any]:
    """Pairwise Se/+P of every annotator pair on one record, plus consensus event counts."""
    if len(annotators) < 2:
        raise ConsensusError(f"need two or more annotators, got {list(annotators)}")
    evs = [read_events(record, a) for a in annotators]
    pairs = [compare(a, b, tolerance_ms=tolerance_ms, types=types, lag=lag) for a, b in itertools.combinations(evs, 2)]
    cons = consensus_events(evs, tolerance_ms=tolerance_ms)
    diffs = [v["mean_diff_ms"] for p in pairs for v in p["types"].values() if v["mean_diff_ms"] is not None]
    return {
        "record": Path(record).name,
        "annotators": list(annotators),
        "fs": {e.annotator: e.fs for e in evs},
        "pairs": pairs,
        "consensus": {"events": len(cons), "by_type": cons["type"].value_counts().to_dict() if len(cons) else {}},
        "mean_diff_ms": summarize(diffs, n_boot=0).as_dict() if diffs else None,
    }
