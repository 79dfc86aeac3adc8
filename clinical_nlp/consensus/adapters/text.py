"""Text adapter: pulled Doccano rows (``LABELS.jsonl``) → aligned units → agreement and consensus spans.

Rows: ``id``, ``annotator``, ``text``, ``spans`` (``start``, ``end``, ``label`` and the attributes
``negation``/``temporality``/``experiencer``; a missing attribute takes its default; ``id`` where
relations refer to it) and optionally ``relations`` (``type``, ``arg1``, ``arg2`` = span ids).

Example:
    >>> rows = [{"id": "n1", "annotator": a, "text": "No fever.", "spans": [{"start": 3, "end": 8,
    ...          "label": "Condition", "negation": "negated"}]} for a in ("ann", "bob")]
    >>> report = agreement_report(load_rows(rows))
    >>> report["overall"]["span_f1_exact"]
    1.0
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clinical_nlp.consensus.agreement import (
    cohen_kappa,
    krippendorff_alpha,
    mean_pairwise,
    pairwise_cohen_kappa,
)
from clinical_nlp.consensus.relations import (
    RelKey,
    majority_relations,
    relation_agreement,
    relation_keys,
    relation_prf,
    relations_for,
    with_span_ids,
)
from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.jsonl import iter_json_rows, verified_spans
from clinical_nlp.metrics import PRF, corpus_span_prf, match_spans
from clinical_nlp.types import ATTRIBUTE_DEFAULTS, Span

ATTRIBUTES = tuple(ATTRIBUTE_DEFAULTS)
NO_SPAN = "__none__"


@dataclass(frozen=True)
class TextLabels:
    """Annotations of a corpus: ``spans[note][annotator]`` and the note texts."""

    texts: dict[str, str]
    spans: dict[str, dict[str, tuple[Span, ...]]]
    #: ``relations[note][annotator]``: her links as keys over offsets and labels (empty: none given)
    relations: dict[str, dict[str, frozenset[RelKey]]] = field(default_factory=dict)

    @property
    def annotators(self) -> list[str]:
        return sorted({a for by in self.spans.values() for a in by})


def _undirected() -> frozenset[str]:
    """The default label schema's undirected relation types (their argument order does not count)."""
    from clinical_nlp.config import load_label_schema

    return load_label_schema().undirected_relations


def _add_row(
    texts: dict,
    spans: dict,
    row: Mapping[str, Any],
    source: str,
    line: int | None,
    relations: dict | None = None,
    undirected: frozenset[str] = frozenset(),
) -> None:
    for key in ("id", "annotator", "text"):
        if key not in row or row[key] is None or (key != "text" and row[key] == ""):
            raise InputFormatError(f"row has no {key!r}", source=source, line=line)
    nid, ann, text = str(row["id"]), str(row["annotator"]), row["text"]
    if not isinstance(text, str):
        raise InputFormatError(f"note {nid!r}: 'text' must be a string", source=source, line=line)
    if nid in texts and texts[nid] != text:
        raise InputFormatError(f"note {nid!r} has a different text than in an earlier row", source=source, line=line)
    if ann in spans.get(nid, {}):
        raise InputFormatError(f"note {nid!r} appears twice for annotator {ann!r}", source=source, line=line)
    out = verified_spans(
        row.get("spans"), text, nid, source=source, line=line, owner="note", span_of=f" of annotator {ann!r}"
    )
    texts[nid] = text
    spans.setdefault(nid, {})[ann] = tuple(sorted(out, key=lambda s: (s.start, s.end, s.label)))
    if relations is not None:
        raw = row.get("relations") or []
        if not isinstance(raw, list):
            raise InputFormatError(f"note {nid!r}: 'relations' must be a list", source=source, line=line)
        try:
            keys = relation_keys(out, raw, undirected, where=f"note {nid!r} of annotator {ann!r}: ")
        except InputFormatError as exc:
            raise InputFormatError(str(exc), source=source, line=line) from None
        relations.setdefault(nid, {})[ann] = frozenset(keys)


def load_rows(
    rows: Iterable[Mapping[str, Any]], *, source: str = "<rows>", undirected: frozenset[str] | None = None
) -> TextLabels:
    """Validate rows in memory (see the module docstring for the format); ``undirected``: the relation types
    whose argument order does not count (default: the default label schema's)."""
    texts: dict[str, str] = {}
    spans: dict[str, dict[str, tuple[Span, ...]]] = {}
    relations: dict[str, dict[str, frozenset[RelKey]]] = {}
    undirected = _undirected() if undirected is None else undirected
    for i, row in enumerate(rows, start=1):
        _add_row(texts, spans, row, source, i, relations, undirected)
    if not texts:
        raise InputFormatError("no annotation rows", source=source)
    return TextLabels(texts, spans, relations)


def read_labels(path: Path | str, *, undirected: frozenset[str] | None = None) -> TextLabels:
    """Read ``LABELS.jsonl`` as written by ``clinical-nlp doccano pull``; errors name file and line.
    ``undirected`` as for :func:`load_rows`."""
    texts: dict[str, str] = {}
    spans: dict[str, dict[str, tuple[Span, ...]]] = {}
    relations: dict[str, dict[str, frozenset[RelKey]]] = {}
    undirected = _undirected() if undirected is None else undirected
    for line, row in iter_json_rows(path):
        _add_row(texts, spans, row, str(path), line, relations, undirected)
    if not texts:
        raise InputFormatError("no annotation rows (empty file)", source=str(path))
    return TextLabels(texts, spans, relations)


# units ---------------------------------------------------------------------------
def align_units(labels: TextLabels) -> list[dict[str, Any]]:
    """Group overlapping spans across annotators into units (connected components per note).

    Returns one dict per unit: ``item``, ``unit`` (``"start-end"`` of the component), ``members``
    ``{annotator: [Span, ...]}``.
    """
    units = []
    for nid in sorted(labels.spans):
        flat = [(a, s) for a, ss in labels.spans[nid].items() for s in ss]
        flat.sort(key=lambda x: (x[1].start, x[1].end))
        group: list[tuple[str | None, Span]] = []
        end = -1
        for a, s in flat + [(None, None)]:
            if s is None or (group and s.start >= end):
                if group:
                    members: dict[str, list[Span]] = defaultdict(list)
                    for ga, gs in group:
                        members[str(ga)].append(gs)
                    start = min(gs.start for _, gs in group)
                    units.append({"item": nid, "unit": f"{start}-{end}", "members": dict(members)})
                group, end = [], -1
            if s is not None:
                group.append((a, s))
                end = max(end, s.end)
    return units


def units_frame(labels: TextLabels, *, field: str = "label") -> pd.DataFrame:
    """Long frame of aligned units: each annotator of the note gets a row per unit (``__none__`` = no span).

    ``field`` is ``label`` or an attribute name (value of the annotator's first span in the unit).
    """
    rows = []
    for u in align_units(labels):
        for ann in labels.spans[u["item"]]:
            spans = u["members"].get(ann)
            if not spans:
                value = NO_SPAN
            elif field == "label":
                value = spans[0].label
            else:
                value = spans[0].attributes.get(field, ATTRIBUTE_DEFAULTS.get(field, ""))
            rows.append({"item": u["item"], "annotator": ann, "unit": u["unit"], "label": value})
    return pd.DataFrame(rows, columns=["item", "annotator", "unit", "label"])


def same_boundary_frame(labels: TextLabels, field: str) -> pd.DataFrame:
    """Long frame over spans with identical boundaries marked by two or more annotators."""
    rows: list[dict[str, Any]] = []
    for nid, by in labels.spans.items():
        seen: dict[tuple, dict[str, str]] = defaultdict(dict)
        for ann, spans in by.items():
            for s in spans:
                value = s.label if field == "label" else s.attributes.get(field, ATTRIBUTE_DEFAULTS.get(field, ""))
                seen[s.pieces].setdefault(ann, value)
        for pieces, vals in seen.items():
            if len(vals) >= 2:
                unit = ",".join(f"{a}-{b}" for a, b in pieces)
                rows.extend({"item": nid, "annotator": a, "unit": unit, "label": v} for a, v in vals.items())
    return pd.DataFrame(rows, columns=["item", "annotator", "unit", "label"])


# agreement -----------------------------------------------------------------------
def _pair_prf(labels: TextLabels, a: str, b: str, mode: str) -> dict[str, PRF]:
    notes = [n for n, by in labels.spans.items() if a in by and b in by]
    return corpus_span_prf([labels.spans[n][a] for n in notes], [labels.spans[n][b] for n in notes], mode)  # type: ignore[arg-type]


def _span_f1_ci(
    labels: TextLabels, pairs: list[tuple[str, str]], mode: str, *, n_boot: int, seed: int
) -> tuple[float, float] | None:
    """Seeded bootstrap over notes of the pair-averaged micro span F1."""
    import numpy as np

    from clinical_nlp.metrics import span_prf

    notes = sorted(labels.spans)
    if n_boot <= 0 or len(notes) < 2:
        return None
    counts = np.zeros((len(pairs), len(notes), 3))  # tp, fp, fn per pair and note (0 where not shared)
    for p, (a, b) in enumerate(pairs):
        for k, n in enumerate(notes):
            by = labels.spans[n]
            if a in by and b in by:
                m = span_prf(by[a], by[b], mode)["__micro__"]  # type: ignore[arg-type]
                counts[p, k] = (m.tp, m.fp, m.fn)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        tot = counts[:, rng.integers(0, len(notes), len(notes))].sum(axis=1)
        denom = 2 * tot[:, 0] + tot[:, 1] + tot[:, 2]
        f1 = np.where(denom > 0, 2 * tot[:, 0] / np.where(denom > 0, denom, 1), 1.0)
        values.append(f1.mean())
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def agreement_report(labels: TextLabels, *, n_boot: int = 200, seed: int = 0) -> dict[str, Any]:
    """The agreement report (the ``REPORT.json`` of ``clinical-nlp agree``).

    Span F1 is micro over the corpus for each annotator pair (notes both annotated), then averaged
    over pairs. Attribute agreement is over spans both annotators marked with the same boundaries.
    Undefined figures are ``null`` with a ``*_reason``.
    """
    names = labels.annotators
    pairs = list(itertools.combinations(names, 2))
    report: dict[str, Any] = {
        "annotators": names,
        "notes": len(labels.texts),
        "spans": sum(len(s) for by in labels.spans.values() for s in by.values()),
        "pairs": [],
        "overall": {},
        "labels": {},
        "attributes": {},
    }
    reason = None if pairs else f"agreement needs two or more annotators, got {len(names)}"
    f1s: dict[str, list[float]] = {"exact": [], "overlap": []}
    per_label: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"exact": [], "overlap": []})
    all_labels = sorted({s.label for by in labels.spans.values() for ss in by.values() for s in ss})
    for a, b in pairs:
        entry: dict[str, Any] = {"a": a, "b": b}
        for mode in ("exact", "overlap"):
            prf = _pair_prf(labels, a, b, mode)
            micro = prf["__micro__"]
            entry[f"span_{mode}"] = micro.as_dict()
            f1s[mode].append(micro.f1)
            for lab in all_labels:
                if lab in prf:
                    per_label[lab][mode].append(prf[lab].f1)
        report["pairs"].append(entry)
    for mode in ("exact", "overlap"):
        report["overall"][f"span_f1_{mode}"] = (sum(f1s[mode]) / len(f1s[mode])) if f1s[mode] else None
        ci = _span_f1_ci(labels, pairs, mode, n_boot=n_boot, seed=seed) if pairs else None
        if ci is not None:
            report["overall"][f"span_f1_{mode}_ci95"] = list(ci)
    if reason:
        report["overall"]["reason"] = reason
    for lab in all_labels:
        d = per_label.get(lab)
        report["labels"][lab] = {
            f"span_f1_{mode}": (sum(d[mode]) / len(d[mode]) if d and d[mode] else None) for mode in ("exact", "overlap")
        }
        if not d or not d["exact"]:
            report["labels"][lab]["reason"] = reason or "label used in no note shared by two annotators"
    # label agreement on aligned units (a missing span counts as its own category)
    for key, frame in (
        ("label_on_units", units_frame(labels)),
        ("label_same_boundaries", same_boundary_frame(labels, "label")),
    ):
        report["overall"][key] = _categorical(frame, n_boot=n_boot, seed=seed)
    for attr in ATTRIBUTES:
        report["attributes"][attr] = _categorical(same_boundary_frame(labels, attr), n_boot=n_boot, seed=seed)
    if any(keys for by in labels.relations.values() for keys in by.values()):
        rel = relation_agreement({n: {a: set(k) for a, k in by.items()} for n, by in labels.relations.items()})
        report["relations"] = rel
        report["overall"]["relation_f1"] = rel["relation_f1"]
    return report


def _categorical(frame: pd.DataFrame, *, n_boot: int, seed: int) -> dict[str, Any]:
    if frame.empty:
        why = "no spans marked with the same boundaries by two annotators"
        return {
            "cohen_kappa": None,
            "cohen_kappa_reason": why,
            "krippendorff_alpha": None,
            "krippendorff_alpha_reason": why,
            "n": 0,
        }
    pairwise = pairwise_cohen_kappa(frame, n_boot=n_boot, seed=seed)
    kappa = mean_pairwise(pairwise.values()) if len(pairwise) != 1 else next(iter(pairwise.values()))
    alpha = krippendorff_alpha(frame, n_boot=n_boot, seed=seed)
    out: dict[str, Any] = {
        "cohen_kappa": kappa.value,
        "krippendorff_alpha": alpha.value,
        "n": int(frame.groupby(["item", "unit"]).ngroups),
    }
    if kappa.ci:
        out["cohen_kappa_ci95"] = list(kappa.ci)
    if alpha.ci:
        out["krippendorff_alpha_ci95"] = list(alpha.ci)
    if kappa.value is None:
        out["cohen_kappa_reason"] = kappa.reason
    if alpha.value is None:
        out["krippendorff_alpha_reason"] = alpha.reason
    out["pairwise_cohen_kappa"] = {f"{a}|{b}": r.value for (a, b), r in pairwise.items()}
    return out


# consensus -----------------------------------------------------------------------
def consensus_spans(labels: TextLabels, *, min_votes: float = 0.5, method: str = "majority") -> dict[str, list[Span]]:
    """Gold spans per note from aligned units, aggregated with the core ``aggregate``.

    Each unit's label is aggregated (majority vote or Dawid-Skene) over the annotators who marked a
    span there; the unit becomes a span when the annotators voting for that label are more than
    ``min_votes`` of the note's annotators. Boundaries and each attribute take their most common
    value among those spans.
    """
    from clinical_nlp.consensus.aggregation import aggregate

    out: dict[str, list[Span]] = {n: [] for n in labels.texts}
    units = align_units(labels)
    frame = units_frame(labels)
    marked = frame[frame["label"] != NO_SPAN]
    if marked.empty:
        return out
    agg = aggregate(marked, method=method).result  # type: ignore[arg-type]
    for u in units:
        n_ann = len(labels.spans[u["item"]])
        label = agg.get((u["item"], u["unit"]))
        chosen = [spans[0] for spans in u["members"].values() if spans[0].label == label]
        if not chosen or len(chosen) / n_ann <= min_votes:
            continue
        (start, end), _ = Counter((s.start, s.end) for s in chosen).most_common(1)[0]
        attrs = {}
        for attr in ATTRIBUTES:
            value, _ = Counter(s.attributes.get(attr, ATTRIBUTE_DEFAULTS[attr]) for s in chosen).most_common(1)[0]
            attrs[attr] = value
        text = labels.texts[u["item"]]
        out[u["item"]].append(Span(start, end, str(label), text[start:end], attrs, source="consensus"))
    return out


def consensus_relations(
    labels: TextLabels, spans: Mapping[str, Sequence[Span]], *, min_votes: float = 0.5
) -> dict[str, tuple[tuple[Span, ...], list[dict[str, str]]]]:
    """Per note the consensus spans (with ids ``T1`` …) and the relations more than ``min_votes`` of its
    annotators made between two of those spans (a link to a span without consensus is dropped). A note
    nobody linked keeps its spans as they are (no ids)."""
    out: dict[str, tuple[tuple[Span, ...], list[dict[str, str]]]] = {}
    for nid, chosen in spans.items():
        by_ann = labels.relations.get(nid, {})
        if not any(by_ann.values()):
            out[nid] = (tuple(chosen), [])
            continue
        with_ids = with_span_ids(list(chosen))
        votes = {a: set(by_ann.get(a, frozenset())) for a in labels.spans.get(nid, {})}
        out[nid] = (with_ids, relations_for(with_ids, majority_relations(votes, min_votes=min_votes)))
    return out


def item_agreement(labels: TextLabels, note_id: str) -> dict[str, float | None]:
    """Per-note minimum pairwise span F1 (exact), attribute kappa and, where anyone linked spans, relation F1
    (for the adjudication queue)."""
    by = labels.spans[note_id]
    names = sorted(by)
    f1s = []
    for a, b in itertools.combinations(names, 2):
        p = match_spans(by[a], by[b], "exact")
        f1s.append(PRF(len(p), len(by[b]) - len(p), len(by[a]) - len(p)).f1)
    sub = TextLabels({note_id: labels.texts[note_id]}, {note_id: by})
    kappas = []
    for attr in ATTRIBUTES:
        frame = same_boundary_frame(sub, attr)
        if not frame.empty:
            for r in pairwise_cohen_kappa(frame).values():
                if r.value is not None:
                    kappas.append(r.value)
                elif r.n and frame.groupby(["item", "unit"])["label"].nunique().max() > 1:
                    kappas.append(0.0)
    out: dict[str, float | None] = {
        "span_f1": min(f1s) if f1s else None,
        "attribute_kappa": min(kappas) if kappas else None,
    }
    rels = labels.relations.get(note_id, {})
    if any(rels.values()):
        rel_f1 = [
            relation_prf(rels.get(a, set()), rels.get(b, set()))["all"].f1 for a, b in itertools.combinations(names, 2)
        ]
        out["relation_f1"] = min(rel_f1) if rel_f1 else None
    return out


def _tied(values: Iterable[Any]) -> bool:
    """True when the most common value shares its count with another value."""
    top = Counter(values).most_common(2)
    return len(top) == 2 and top[0][1] == top[1][1]


def tied_units(labels: TextLabels, note_id: str) -> list[str]:
    """The units of a note on which no strict majority decides: the label (an annotator who marked nothing
    votes for no span), the boundaries or an attribute. Two annotators who differ always tie; consensus
    would pick one side silently, so these units need an expert."""
    by = labels.spans[note_id]
    if len(by) < 2:
        return []
    sub = TextLabels({note_id: labels.texts[note_id]}, {note_id: by})
    out = []
    for u in align_units(sub):
        first = {a: (u["members"][a][0] if u["members"].get(a) else None) for a in by}
        votes = [s.label if s is not None else NO_SPAN for s in first.values()]
        chosen = [s for s in first.values() if s is not None and s.label == Counter(votes).most_common(1)[0][0]]
        if (
            _tied(votes)
            or _tied((s.start, s.end) for s in chosen)
            or any(_tied(s.attributes.get(a, ATTRIBUTE_DEFAULTS[a]) for s in chosen) for a in ATTRIBUTES)
        ):
            out.append(u["unit"])
    return out


def labels_frame(labels: TextLabels) -> pd.DataFrame:
    """Long frame used for aggregation (aligned units, ``label`` column)."""
    return units_frame(labels)


__all__ = [
    "TextLabels",
    "agreement_report",
    "align_units",
    "cohen_kappa",
    "consensus_relations",
    "consensus_spans",
    "item_agreement",
    "labels_frame",
    "load_rows",
    "read_labels",
    "same_boundary_frame",
    "tied_units",
    "units_frame",
]
_ = Sequence


def text_candidates(labels: TextLabels):
    """Adjudication candidates: one per note, with per-note agreement scores and the labels used."""
    from clinical_nlp.consensus.adjudication import QueueCandidate

    for nid in sorted(labels.spans):
        if len(labels.spans[nid]) < 2:
            scores: dict[str, float | None] = {"annotators": float(len(labels.spans[nid]))}
        else:
            scores = {**item_agreement(labels, nid), "tied_units": float(len(tied_units(labels, nid)))}
        used = {s.label for ss in labels.spans[nid].values() for s in ss}
        yield QueueCandidate(nid, "text", scores, sorted(used))
