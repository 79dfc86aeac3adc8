"""Dataset documentation for auditors: a self-contained HTML page and a JSON file.

Contents: corpus statistics, annotators and qualifications, guideline versions
(drift), agreement per label (pairwise span F1 exact/overlap, character IoU,
token-level Cohen's kappa and Krippendorff's alpha over items annotated by 2+
humans), QA coverage, adjudication counts, model versions, de-identification
method with its measured recall, and audit-log integrity.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import itertools
import json
import string
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.consensus.agreement import kappa_of_arrays
from clinical_nlp.services.privacy import queue_summary
from clinical_nlp.store import Store

RESOURCES = Path(__file__).resolve().parent / "resources"
#: ``deid --detector`` value -> the file with its measured figures
DEID_DETECTORS = {"crf": "metrics.json", "ensemble": "metrics_ensemble.json"}


def _deid_metrics(name: str = "metrics.json") -> dict[str, Any]:
    """The locked-part figures ``bench_deid.py --save-metrics`` wrote for a detector (CRF: ``metrics.json``)."""
    path = RESOURCES / "deid" / name
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    keys = ("method", "corpus", "evaluation", "token_recall", "token_precision", "patient_name_recall",
            "token_recall_without_review_queue", "review_items_per_100_notes")  # fmt: skip
    return {k: data.get(k) for k in keys}


def _spans_by(store: Store) -> dict[str, dict[str, list]]:
    """{item: {annotator: [Span]}} over human annotations."""
    out: dict[str, dict[str, list]] = defaultdict(dict)
    for ann in store.annotations(kind="human"):
        if isinstance(ann.payload, tuple):
            out[ann.item].setdefault(ann.annotator, []).extend(ann.payload)
    return out


def agreement_per_label(store: Store, labels: list[str]) -> dict[str, dict[str, Any]]:
    """Pairwise agreement of human annotators per label on items with 2+ annotators."""
    from clinical_nlp.metrics import PRF, span_prf

    by_item = _spans_by(store)
    texts: dict[str, str] = {}
    multi = {i: a for i, a in by_item.items() if len(a) >= 2}
    for note in store.notes(list(multi)):
        texts[note.id] = note.text
    result: dict[str, dict[str, Any]] = {}
    for label in labels:
        exact, overlap = PRF(0, 0, 0), PRF(0, 0, 0)
        ious: list[float] = []
        kappas: list[float] = []
        alpha_rows: dict[str, list[np.ndarray]] = defaultdict(list)
        annotators = sorted({a for per in multi.values() for a in per})
        for item, per in multi.items():
            text_len = len(texts.get(item, "")) or max((s.end for ss in per.values() for s in ss), default=0)
            masks = {}
            for a in annotators:
                m = np.zeros(text_len, dtype=bool)
                for s in per.get(a, []):
                    if s.label == label:
                        m[s.start : min(s.end, text_len)] = True
                masks[a] = m
            for a in annotators:
                alpha_rows[a].append(masks[a].astype(float) if a in per else np.full(text_len, np.nan))
            for a, b in itertools.combinations(sorted(per), 2):
                ga = [s for s in per[a] if s.label == label]
                gb = [s for s in per[b] if s.label == label]
                exact += span_prf(ga, gb, "exact").get(label, PRF(0, 0, 0))
                overlap += span_prf(ga, gb, "overlap").get(label, PRF(0, 0, 0))
                union = (masks[a] | masks[b]).sum()
                if union:
                    ious.append(float((masks[a] & masks[b]).sum() / union))
        # token-level kappa over characters would overweight long spans; use whitespace tokens
        pairs_k = []
        for a, b in itertools.combinations(annotators, 2):
            xa, xb = [], []
            for item, per in multi.items():
                if a in per and b in per:
                    text = texts.get(item, "")
                    for tok in _tokens(text):
                        xa.append(any(s.label == label and s.start < tok[1] and tok[0] < s.end for s in per[a]))
                        xb.append(any(s.label == label and s.start < tok[1] and tok[0] < s.end for s in per[b]))
            if xa:
                pairs_k.append(kappa_of_arrays(np.array(xa), np.array(xb)))
        kappas = [k for k in pairs_k if k is not None]
        alpha = None
        if annotators and any(len(v) for v in alpha_rows.values()):
            try:
                import krippendorff

                data = np.vstack([np.concatenate(alpha_rows[a]) for a in annotators])
                if np.nanmax(data) > 0 or np.nanmin(data) < 1:
                    alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
            except (ImportError, ValueError, ZeroDivisionError):
                alpha = None
        result[label] = {
            "items_multi_annotated": len(multi),
            "span_f1_exact": exact.f1 if (exact.tp + exact.fp + exact.fn) else None,
            "span_f1_overlap": overlap.f1 if (overlap.tp + overlap.fp + overlap.fn) else None,
            "char_iou": float(np.mean(ious)) if ious else None,
            "cohen_kappa": float(np.mean(kappas)) if kappas else None,
            "krippendorff_alpha": None if alpha is None or np.isnan(alpha) else alpha,
        }
    return result


def relation_summary(store: Store, undirected: frozenset[str]) -> dict[str, Any]:
    """Links per type in the human and gold annotations, and pairwise relation F1 per type between the
    human annotators of each item read by two or more (both arguments matched by offsets and label)."""
    from clinical_nlp.consensus.relations import relation_agreement, relation_keys

    counts: Counter = Counter()
    by_item: dict[str, dict[str, set]] = {}
    for kind in ("human", "gold"):
        for ann in store.annotations(kind=kind):
            keys = relation_keys(ann.spans, ann.relations, undirected) if ann.relations else set()
            for _, _, t in keys:
                counts[(kind, t)] += 1
            if kind == "human":
                by_item.setdefault(ann.item, {})[ann.annotator] = keys
    shared = {item: by for item, by in by_item.items() if len(by) >= 2}
    types = sorted({t for _, t in counts})
    return {
        "types": {t: {"human": counts[("human", t)], "gold": counts[("gold", t)]} for t in types},
        "agreement": relation_agreement(shared) if shared else None,
    }


def _tokens(text: str) -> list[tuple[int, int]]:
    import re

    return [m.span() for m in re.finditer(r"\w+", text)]


def _adjudications(store: Store) -> dict[str, int]:
    from sqlalchemy import select

    from clinical_nlp.store import AdjudicationRow

    with store.session() as s:
        return dict(Counter(r.status for r in s.scalars(select(AdjudicationRow))))


def _model_versions(store: Store) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from clinical_nlp.store import ModelVersionRow

    with store.session() as s:
        return [
            {
                "version": r.version,
                "kind": r.kind,
                "parent": r.parent,
                "metrics": r.metrics,
                "created_at": r.created_at.isoformat() if r.created_at else None,
            }
            for r in s.scalars(select(ModelVersionRow).order_by(ModelVersionRow.created_at))
        ]


def collect(store: Store, guideline: Any) -> dict[str, Any]:
    """All report data as a JSON-ready dict."""
    from clinical_nlp.annotators import Registry
    from clinical_nlp.audit import AuditLog
    from clinical_nlp.errors import AuditIntegrityError
    from clinical_nlp.qa import check_qa_coverage, guideline_drift
    from clinical_nlp.services.gold import gold_class

    schema = guideline.schema
    notes = store.notes()
    deid_count = sum(store.is_deidentified(n.id) for n in notes) if len(notes) < 20000 else None
    kinds: Counter = Counter()
    label_counts: Counter = Counter()
    annotator_counts: Counter = Counter()
    gold_counts: Counter = Counter()
    for kind in ("pre", "human", "gold"):
        for ann in store.annotations(kind=kind):
            kinds[kind] += 1
            if kind == "human":
                annotator_counts[ann.annotator] += 1
            elif kind == "gold":  # where the gold came from: an expert, a consensus, a corpus file
                gold_counts[(gold_class(ann), ann.annotator, ann.source or "")] += 1
            if isinstance(ann.payload, tuple) and kind in ("human", "gold"):
                for s in ann.payload:
                    label_counts[f"{kind}:{s.label}"] += 1
    log = AuditLog(store)
    audit_ok: dict[str, Any] = {"head": log.head()}
    try:
        audit_ok |= {"ok": True, "entries": log.verify(), "annotation_rows_verified": log.verify_rows()}
    except AuditIntegrityError as exc:
        audit_ok |= {"ok": False, "error": str(exc)}
    drift = guideline_drift(store, guideline.version)
    registry = Registry(store)
    return {
        "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "guideline_version": guideline.version,
        "corpus": {
            "notes": len(notes),
            "deidentified_notes": deid_count,
            "characters": sum(len(n.text) for n in notes),
            "patients": len({n.patient for n in notes if n.patient}),
            "annotations_by_kind": dict(kinds),
            "spans_by_label": dict(sorted(label_counts.items())),
            "annotations_by_annotator": dict(annotator_counts),
            "gold_by_origin": [
                {"class": c, "annotator": a, "source": s, "annotations": n}
                for (c, a, s), n in sorted(gold_counts.items())
            ],
        },
        "annotators": [
            {**a.to_dict(), "qualifications": sorted(a.qualifications(guideline_version=guideline.version))}
            for a in registry.list()
        ],
        "label_requirements": {
            spec.name: {
                "requires": spec.requires,
                "review_rate": spec.review_rate,
                "safety_critical": spec.safety_critical,
            }
            for spec in schema.labels
        },
        "guideline_versions": {
            "current": drift.current,
            "by_version": drift.by_version,
            "stale_annotations": len(drift.stale),
            "stale_examples": drift.stale[:50],
        },
        "agreement": agreement_per_label(store, schema.label_names),
        "relations": relation_summary(store, schema.undirected_relations),
        "agreement_method": "pairwise over items with 2+ human annotators: span F1 (exact, overlap; "
        "clinical_nlp.metrics), character IoU, word-token Cohen's kappa (mean over pairs), "
        "character-level Krippendorff's alpha (nominal)",
        "qa_coverage": check_qa_coverage(store, schema).as_dict(),
        "adjudications": _adjudications(store),
        "model_versions": _model_versions(store),
        "deidentification": _deid_metrics(),
        "deidentification_detectors": [
            m | {"detector": d} for d, f in DEID_DETECTORS.items() if (m := _deid_metrics(f))
        ],
        "deidentification_here": {
            "methods": store.deid_methods(),
            "privacy_review_queue": queue_summary(store, deid_count or 0),
        },
        "audit": audit_ok,
    }


def _plot(fn) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    fn(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p class='meta'>none recorded</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            if isinstance(v, float):
                v = f"{v:.3f}"
            elif isinstance(v, (list, dict)):
                v = json.dumps(v)[:300]
            cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(data: dict[str, Any]) -> str:
    corpus = data["corpus"]
    parts = [
        "<h2>Corpus</h2>",
        _table(
            [{k: v for k, v in corpus.items() if not isinstance(v, dict)}],
            ["notes", "deidentified_notes", "patients", "characters"],
        ),
    ]
    parts.append(
        _table(
            [{"kind": k, "annotations": v} for k, v in corpus["annotations_by_kind"].items()], ["kind", "annotations"]
        )
    )
    if corpus.get("gold_by_origin"):
        parts.append("<p class='meta'>gold annotations by origin (adjudicated by an expert, consensus of annotators, "
                     "imported from a corpus file, single annotator)</p>")  # fmt: skip
        parts.append(_table(corpus["gold_by_origin"], ["class", "annotator", "source", "annotations"]))
    counts = corpus["spans_by_label"]
    if counts:
        img = _plot(
            lambda ax: (
                ax.bar(list(counts), list(counts.values()), color="#4363d8"),
                ax.set_ylabel("spans"),
                ax.tick_params(axis="x", rotation=60, labelsize=7),
            )
        )
        parts.append(f"<img alt='spans per label' src='data:image/png;base64,{img}'>")
    parts.append("<h2>Annotators and qualifications</h2>")
    parts.append(
        _table(
            data["annotators"],
            [
                "name",
                "role",
                "specialty",
                "license_id",
                "hipaa_training",
                "guideline_version",
                "phi_access",
                "qualifications",
            ],
        )
    )
    parts.append(
        _table(
            [{"label": k, **v} for k, v in data["label_requirements"].items()],
            ["label", "requires", "review_rate", "safety_critical"],
        )
    )
    gv = data["guideline_versions"]
    parts.append("<h2>Guideline versions</h2>")
    cls = "ok" if not gv["stale_annotations"] else "bad"
    parts.append(
        f"<p>Current <code>{html.escape(gv['current'])}</code>; "
        f"<span class='{cls}'>{gv['stale_annotations']} annotation(s) made under another version</span>.</p>"
    )
    parts.append(
        _table([{"version": k, "annotations": v} for k, v in gv["by_version"].items()], ["version", "annotations"])
    )
    parts.append(_table(gv["stale_examples"], ["item", "annotator", "round", "version"]))
    parts.append("<h2>Agreement per label</h2>")
    parts.append(f"<p class='meta'>{html.escape(data['agreement_method'])}</p>")
    agr = [{"label": k, **v} for k, v in data["agreement"].items()]
    parts.append(
        _table(
            agr,
            [
                "label",
                "items_multi_annotated",
                "span_f1_exact",
                "span_f1_overlap",
                "char_iou",
                "cohen_kappa",
                "krippendorff_alpha",
            ],
        )
    )
    scored = [(r["label"], r["span_f1_overlap"]) for r in agr if r["span_f1_overlap"] is not None]
    if scored:
        img = _plot(
            lambda ax: (
                ax.bar([s[0] for s in scored], [s[1] for s in scored], color="#3cb44b"),
                ax.set_ylim(0, 1),
                ax.set_ylabel("span F1 (overlap)"),
                ax.tick_params(axis="x", rotation=60, labelsize=7),
            )
        )
        parts.append(f"<img alt='agreement per label' src='data:image/png;base64,{img}'>")
    rel = data.get("relations") or {}
    if rel.get("types"):
        agreement = rel.get("agreement") or {}
        per_type = agreement.get("per_type", {})
        parts.append("<h2>Relations</h2>")
        parts.append(
            "<p class='meta'>links per type (human, gold); pairwise relation F1 between the annotators of items "
            f"read by two or more: overall {html.escape(str(agreement.get('relation_f1')))}</p>"
        )
        rows = [{"type": t, **c, "pairwise_f1": per_type.get(t, {}).get("f1")} for t, c in rel["types"].items()]
        parts.append(_table(rows, ["type", "human", "gold", "pairwise_f1"]))
    qa = data["qa_coverage"]
    parts.append("<h2>QA review coverage</h2>")
    parts.append(f"<p class='{'ok' if qa['met'] else 'bad'}'>Policy {'met' if qa['met'] else 'NOT met'}</p>")
    parts.append(
        _table(
            [v for v in qa["labels"].values()],
            ["label", "safety_critical", "review_rate", "items", "required", "reviewed", "coverage", "missing"],
        )
    )
    parts.append("<h2>Adjudication</h2>")
    parts.append(_table([{"status": k, "count": v} for k, v in data["adjudications"].items()], ["status", "count"]))
    parts.append("<h2>Model versions</h2>")
    parts.append(_table(data["model_versions"], ["version", "kind", "parent", "created_at", "metrics"]))
    parts.append("<h2>De-identification</h2>")
    parts.append(
        _table(
            data["deidentification_detectors"],
            ["detector", "method", "evaluation", "token_recall", "token_recall_without_review_queue", "token_precision",
             "patient_name_recall", "review_items_per_100_notes"],
        )
    )  # fmt: skip
    here = data["deidentification_here"]
    parts.append("<p>In this project, notes per de-identification method (texts still matching their record):</p>")
    parts.append(_table([{"method": k, "notes": v} for k, v in here["methods"].items()], ["method", "notes"]))
    parts.append("<p>Privacy review queue of this project:</p>")
    parts.append(
        _table(
            [here["privacy_review_queue"]],
            ["items", "open", "confirmed", "rejected", "restored", "superseded", "per_100_notes"],
        )
    )
    audit = data["audit"]
    audit_txt = (
        f"<span class='ok'>verified, {audit['entries']} entries, {audit['annotation_rows_verified']} annotation rows "
        f"match their audited hashes; head <code>{audit['head']}</code></span>"
        if audit["ok"]
        else f"<span class='bad'>BROKEN: {html.escape(audit['error'])}</span> (head <code>{audit['head']}</code>)"
    )
    template = string.Template((RESOURCES / "report" / "template.html").read_text(encoding="utf-8"))
    return template.substitute(
        title="Dataset documentation",
        generated=html.escape(data["generated"]),
        guideline=html.escape(data["guideline_version"]),
        audit=audit_txt,
        body="\n".join(parts),
    )


def build_report(project_dir: Path | str | None, output: Path | str) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.json`` into ``output``; returns their paths (audited as export)."""
    from clinical_nlp.audit import AuditLog
    from clinical_nlp.io.jsonl import atomic_writer
    from clinical_nlp.project import resolve_project

    project = resolve_project(project_dir)
    store = Store(project.store_url)
    data = collect(store, project.guideline())
    out = Path(output)
    html_path, json_path = out / "report.html", out / "report.json"
    page = render_html(data)
    with atomic_writer(json_path) as handle:
        handle.write(json.dumps(data, indent=2, default=str))
    with atomic_writer(html_path) as handle:
        handle.write(page)
    AuditLog(store).append(
        "export",
        actor="report",
        details={"report": str(html_path.name), "guideline_version": data["guideline_version"]},
    )
    return html_path, json_path
