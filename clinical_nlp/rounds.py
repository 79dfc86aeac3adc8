"""Active-learning rounds over the store: a resumable state machine.

One round: select a batch (query strategy over the unlabelled pool) →
pre-annotate it with the current model (rules pipeline before the first
model) → push to Doccano → annotators correct → pull → agreement,
consensus and expert adjudication → gold → retrain → evaluate → report.

``start_round`` runs the steps up to the push; ``finish_round`` the rest.
Each step's outcome is written to the round's row before the next step
starts, so a crash at any point is resumed by calling the same function
again (completed steps are skipped; push and pull are idempotent).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import Project
from clinical_nlp.faults import crash_point
from clinical_nlp.io.jsonl import atomic_writer
from clinical_nlp.round_pool import round_pool
from clinical_nlp.round_report import round_dir, strict_f1, write_round_report
from clinical_nlp.round_settings import RoundError, RoundSettings
from clinical_nlp.store import RoundRow, Store, utcnow
from clinical_nlp.types import AnnotatedNote, Annotation, Note, Span

logger = logging.getLogger(__name__)

#: Steps in order; ``state`` of a round is the last completed step.
STEPS = ("selected", "preannotated", "pushed", "pulled", "consensus", "trained", "evaluated", "done")

#: Decides an adjudication item: (note, per-annotator spans, reasons) -> (gold spans, reason[, relations over
#: the spans' ids]): the expert's decision on a queued note given outside Doccano, or None: she decides in her
#: Doccano adjudication project (finish pushes it there and stops until she has marked it done)
ExpertDecision = Callable[
    [Note, Mapping[str, Sequence[Span]], Sequence[str]],
    tuple[Sequence[Span], str] | tuple[Sequence[Span], str, Sequence[Mapping[str, Any]]] | None,
]


# --------------------------------------------------------------------------- round rows
def _load(store: Store, number: int) -> dict[str, Any]:
    with store.session() as s:
        row = s.get(RoundRow, number)
        if row is None:
            raise RoundError(f"round {number} does not exist")
        return {"number": row.number, "state": row.state, **(row.data or {})}


def _save(store: Store, number: int, state: str, data: Mapping[str, Any]) -> None:
    clean = json.loads(json.dumps({k: v for k, v in data.items() if k not in ("number", "state")}, default=str))
    with store.session() as s:
        row = s.get(RoundRow, number)
        if row is None:
            s.add(RoundRow(number=number, state=state, data=clean, updated_at=utcnow()))
        else:
            row.state, row.data, row.updated_at = state, clean, utcnow()


def rounds(store: Store) -> list[dict[str, Any]]:
    """All rounds, oldest first, as dicts (``number``, ``state`` and step data)."""
    with store.session() as s:
        return [
            {"number": r.number, "state": r.state, **(r.data or {})}
            for r in s.scalars(select(RoundRow).order_by(RoundRow.number))
        ]


def _done(info: Mapping[str, Any], step: str) -> bool:
    return STEPS.index(info["state"]) >= STEPS.index(step)


# --------------------------------------------------------------------------- helpers
def _current_model(store: Store, *, before: int | None = None) -> tuple[Any | None, str | None]:
    """The model of the latest round whose model was promoted (or None); ``before``: rounds before that one."""
    for info in reversed(rounds(store)):
        if before is not None and info["number"] >= before:
            continue
        if info.get("promotion", {}).get("promoted") is False:
            continue
        path = info.get("model_path")
        if path and Path(path).exists():
            from clinical_nlp.models.entities import load_entity_model

            return load_entity_model(path), info.get("model_version")
    return None, None


def _batched_ids(store: Store) -> set[str]:
    return {nid for info in rounds(store) for nid in info.get("batch", [])}


def _with_attributes(note: Note, spans: Sequence[Span]) -> tuple[Span, ...]:
    """Fill negation/temporality/experiencer on model spans with the assertion classifier."""
    from clinical_nlp.pipeline.assertion import classify_assertions

    if not spans:
        return ()
    attrs = classify_assertions([(note.text, s.start, s.end) for s in spans])
    return tuple(s.with_attributes(**a) for s, a in zip(spans, attrs, strict=True))


def preannotate_batch(notes: Sequence[Note], model: Any | None, labels: Sequence[str]) -> list[AnnotatedNote]:
    """Pre-annotate with the project's current entity model; before its first, the shipped default model
    (with the rules pipeline; rules alone when the package has no model built)."""
    keep = set(labels)
    if model is not None:
        predicted = model.predict(list(notes))
        return [
            AnnotatedNote(n, _with_attributes(n, [s for s in spans if s.label in keep]))
            for n, spans in zip(notes, predicted, strict=True)
        ]
    from clinical_nlp.pipeline import build_pipeline, preannotate

    nlp = build_pipeline(use_default_model=True)
    out = []
    for doc in preannotate(notes, nlp):
        out.append(AnnotatedNote(doc.note, tuple(s for s in doc.spans if s.label in keep and s.fragments is None)))
    return out


def _with_relations(docs: Sequence[AnnotatedNote], schema: Any) -> list[AnnotatedNote]:
    """The documents with the shipped relation model's links between their spans (those the schema allows)."""
    from clinical_nlp.models.relations import default_relation_model_dir
    from clinical_nlp.pipeline.relations import predict_relations

    found = default_relation_model_dir()
    if found is None:
        raise RoundError("round start --relations: the shipped relation model is not built (make model)")
    return [predict_relations(d, str(found), schema) for d in docs]


# --------------------------------------------------------------------------- start
def start_round(
    project: Project, settings: RoundSettings, *, actor: str = "clinical-nlp", progress: bool = False
) -> dict[str, Any]:
    """Select a batch, pre-annotate it and push it to Doccano (resumes an unfinished round)."""
    from clinical_nlp import doccano
    from clinical_nlp.active import get_strategy

    store = Store(project.store_url)
    existing = rounds(store)
    if (
        existing
        and existing[-1]["state"] != "done"
        and _done(existing[-1], "selected")
        and not _done(existing[-1], "pushed")
    ):
        info = existing[-1]  # resume the interrupted start
    elif existing and existing[-1]["state"] != "done":
        raise RoundError(f"round {existing[-1]['number']} is '{existing[-1]['state']}'; finish it first")
    else:
        number = (existing[-1]["number"] + 1) if existing else 1
        pool, held = round_pool(store, _batched_ids(store), require_deid=project.config.require_deid)
        if not pool:
            raise RoundError(
                "no unlabelled note can be selected: "
                + (", ".join(f"{n} {why}" for why, n in held.items()) or "every note is gold or in a round")
                + " (new notes: 'clinical-nlp deid --project-dir'; waiting ones: 'clinical-nlp deid-review list')"
            )
        model, version = _current_model(store)
        name = settings.strategy if model is not None else "random"
        strategy = get_strategy(name)
        rng = np.random.default_rng(settings.seed + number)
        # the strategy's pool: the candidates, then the gold notes as its labelled ones (indices after them)
        docs: list[Any] = [*pool, *_gold_docs(store)]
        labelled = list(range(len(pool), len(docs)))
        picked = strategy.query(model, docs, list(range(len(pool))), labelled, min(settings.batch, len(pool)), rng)
        batch = [pool[int(i)].id for i in picked]
        info = {
            "number": number,
            "state": "selected",
            "settings": asdict(settings),
            "batch": batch,
            "strategy": name,
            "parent_model": version,
            "started_at": utcnow().isoformat(),
            "held_back": held,
        }
        _save(store, number, "selected", info)
    number = info["number"]
    guideline = project.guideline()
    notes = store.notes(info["batch"])
    model, version = _current_model(store)
    pre = preannotate_batch(notes, model, settings.labels)
    if settings.relations:
        pre = _with_relations(pre, guideline.schema)
    model_version = version or "rules-pipeline"
    info["pre_spans"] = sum(len(d.spans) for d in pre)
    _save(store, number, "preannotated", info)
    rows = [(d, {"model_version": model_version}) for d in pre]
    report = doccano.push(
        store,
        guideline,
        settings.doccano_project,
        rows,
        list(settings.annotators),
        overlap=settings.overlap,
        require_deid=project.config.require_deid,
        actor=actor,
    )
    info["assignments"] = report.assignments
    info["push_seconds"] = report.seconds
    info["doccano_project_ids"] = report.project_ids
    _save(store, number, "pushed", info)
    AuditLog(store).append(
        "round",
        actor=actor,
        details={"round": number, "step": "pushed", "notes": len(notes), "strategy": info["strategy"]},
    )
    return _load(store, number)


# --------------------------------------------------------------------------- finish
def _gold_docs(store: Store) -> list[AnnotatedNote]:
    notes = {n.id: n for n in store.notes()}
    latest: dict[str, Annotation] = {}
    for a in store.annotations(kind="gold"):
        if a.item in notes and (a.item not in latest or (a.round or 0) >= (latest[a.item].round or 0)):
            latest[a.item] = a
    return [AnnotatedNote(notes[i], a.spans) for i, a in sorted(latest.items())]


def _guideline_versions(labels_path: str) -> dict[str, str]:
    """Note id → the guideline version(s) its pulled annotations were made under (comma-joined)."""
    versions: dict[str, set[str]] = {}
    for line in Path(labels_path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("guideline_version"):
            versions.setdefault(str(row["id"]), set()).add(str(row["guideline_version"]))
    return {nid: ",".join(sorted(v))[:100] for nid, v in versions.items()}


def finish_round(
    project: Project,
    *,
    expert_decision: ExpertDecision,
    dev: Sequence[AnnotatedNote],
    actor: str = "clinical-nlp",
    number: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Pull, reach consensus (adjudicating what needs it), retrain, evaluate and report."""
    from clinical_nlp import doccano
    from clinical_nlp.consensus.adapters import text as text_adapter
    from clinical_nlp.edits import add_summaries, unchanged_suggestions
    from clinical_nlp.models.entities import TrainConfig, evaluate_entity_model, train_entity_model
    from clinical_nlp.services import adjudication

    store = Store(project.store_url)
    all_rounds = rounds(store)
    if not all_rounds:
        raise RoundError("no round started")
    info = _load(store, number or all_rounds[-1]["number"])
    number = info["number"]
    if not _done(info, "pushed"):
        raise RoundError(f"round {number} is '{info['state']}': start it (push) first")
    settings = RoundSettings(
        **{
            **info["settings"],
            "annotators": tuple(info["settings"]["annotators"]),
            "labels": tuple(info["settings"]["labels"]),
        }
    )
    guideline = project.guideline()
    batch = set(info["batch"])

    if not _done(info, "pulled"):
        rows = [r for r in doccano.pull(store, guideline, settings.doccano_project, actor=actor) if r["id"] in batch]
        # assignments: annotator -> note ids
        expected = {(nid, a) for a, nids in info["assignments"].items() for nid in nids}
        got = {(r["id"], r["annotator"]) for r in rows}
        missing = sorted(expected - got)
        if missing:
            problems = {
                (p["note"], p["annotator"]): p["problem"]
                for p in doccano.pull_problems(store, settings.doccano_project)
            }
            broken = [m for m in missing if m in problems]
            detail = (
                f"{len(broken)} need fixing in Doccano (first: note {broken[0][0]!r} by {broken[0][1]!r}: "
                f"{problems[broken[0]]}); "
                if broken
                else ""
            )
            waiting = [m for m in missing if m not in problems]
            raise RoundError(
                f"round {number}: {len(missing)} of {len(expected)} assigned annotations are not pulled: {detail}"
                + (
                    f"{len(waiting)} not marked done yet (first: note {waiting[0][0]!r} by {waiting[0][1]!r})"
                    if waiting
                    else "the rest are pulled"
                )
            )
        edits = add_summaries([r["edits"] for r in rows])
        info["labels_path"] = str(round_dir(project, number) / "labels.jsonl")
        with atomic_writer(info["labels_path"]) as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
        info["edits"] = edits
        info["edits_per_note"] = edits.get("total", 0) / max(1, len(batch))
        info["unchanged_suggestions"] = unchanged_suggestions(rows)
        _save(store, number, "pulled", info)
        crash_point("round.pulled")

    if not _done(info, "consensus"):
        labels = text_adapter.read_labels(info["labels_path"], undirected=guideline.schema.undirected_relations)
        report = text_adapter.agreement_report(labels, n_boot=100, seed=settings.seed)
        info["agreement"] = report
        consensus = text_adapter.consensus_relations(labels, text_adapter.consensus_spans(labels))
        pulled_under = _guideline_versions(info["labels_path"])  # a consensus keeps its annotations' guideline
        queued = adjudication.build_queue(
            store, text_adapter.text_candidates(labels), expert=settings.expert, schema=guideline.schema, actor=actor
        )
        pending = {e.item: e for e in adjudication.pending(store, expert=settings.expert) if e.item in batch}
        decided = {e.item for e in adjudication.entries(store) if e.item in batch and e.status == "decided"}
        written: dict[str, str] = {}
        in_doccano: list[str] = []
        for nid in sorted(batch):
            note = store.get_note(nid)
            if nid in pending:
                given = expert_decision(note, labels.spans.get(nid, {}), pending[nid].reasons)
                if given is None:
                    in_doccano.append(nid)
                    continue
                spans, reason, *links = given
                adjudication.decide(
                    store,
                    nid,
                    pending[nid].unit,
                    list(spans),
                    settings.expert,
                    reason,
                    round=number,
                    guideline_version=guideline.version,
                    relations=links[0] if links else (),
                )
            elif nid not in decided:  # decided in Doccano on an earlier run of finish: her decision stands
                written |= store.save_annotation(
                    Annotation(
                        item=nid,
                        annotator="consensus",
                        payload=consensus[nid][0],
                        relations=tuple(consensus[nid][1]),
                        source="consensus:majority",
                        round=number,
                        guideline_version=pulled_under.get(nid) or guideline.version,
                        edits={"annotators": sorted(labels.spans.get(nid, {}))},
                    ),
                    kind="gold",
                )
        if written:
            AuditLog(store).append(
                "round", actor=actor, details={"round": number, "step": "consensus", "notes": len(batch)}, rows=written
            )
        if in_doccano:
            _adjudicate_in_doccano(store, guideline, settings, number, in_doccano, info)
        info["adjudicated"] = len(pending) + len(decided)
        info["queued"] = queued
        _save(store, number, "consensus", info)
        crash_point("round.consensus")

    if not _done(info, "trained"):
        gold = _gold_docs(store)
        parent = info.get("parent_model")
        out_dir = Path(project.root) / project.config.models_dir / f"round-{number:03d}"
        config = TrainConfig(
            kind="spacy", labels=settings.labels, epochs=settings.epochs, seed=settings.seed, patience=3
        )
        model = train_entity_model(
            gold, list(dev) or None, config, out_dir, parent_version=parent, store=store, progress=progress
        )
        info["model_path"] = str(out_dir)
        info["model_version"] = model.version
        info["n_gold"] = len(gold)
        AuditLog(store).append(
            "train",
            actor=actor,
            details={"round": number, "model": model.version, "gold_notes": len(gold), "parent": parent},
        )
        _save(store, number, "trained", info)

    if not _done(info, "evaluated"):
        from clinical_nlp.models.entities import load_entity_model

        model = load_entity_model(info["model_path"])
        metrics = evaluate_entity_model(model, list(dev), labels=settings.labels) if dev else {}
        info["metrics"] = metrics
        info["promotion"] = _promotion(store, number, strict_f1(metrics), dev, settings)
        _save(store, number, "evaluated", info)

    from clinical_nlp.qa import qa_todo

    info["open"] = {
        "qa_reviews": len(qa_todo(store, guideline.schema)),
        "adjudications": len(adjudication.pending(store)),
    }
    info["report"] = write_round_report(project, info, rounds(store))
    info["finished_at"] = utcnow().isoformat()
    _save(store, number, "done", info)
    AuditLog(store).append(
        "round", actor=actor, details={"round": number, "step": "done", "model": info.get("model_version")}
    )
    return _load(store, number)


def _adjudicate_in_doccano(
    store: Store, guideline: Any, settings: RoundSettings, number: int, notes: Sequence[str], info: dict[str, Any]
) -> None:
    """Push the queued notes to the expert's Doccano project, record what she has decided there; RoundError
    naming what she still has to do (the re-run of finish continues from here)."""
    from clinical_nlp.doccano.adjudication import pull_adjudication, push_adjudication
    from clinical_nlp.services import adjudication

    pushed = push_adjudication(store, guideline, settings.doccano_project, settings.expert)
    pull_adjudication(store, guideline, settings.doccano_project, settings.expert, round=number)
    open_items = {e.item for e in adjudication.pending(store)}
    waiting = [n for n in notes if n in open_items]
    info["adjudication_link"] = pushed.link
    _save(store, number, "pulled", info)
    if waiting:
        raise RoundError(
            f"round {number}: {len(waiting)} note(s) wait for {settings.expert}'s adjudication in Doccano "
            f"({pushed.doccano_project}, {pushed.link}; first: {waiting[0]!r}): she corrects the suggestions "
            "and marks each done; then run 'clinical-nlp round finish' again"
        )


def _promotion(
    store: Store, number: int, new_f1: float | None, dev: Sequence[AnnotatedNote], settings: RoundSettings
) -> dict[str, Any]:
    """Keep the current model when the retrained one is worse on the same dev set (beyond the tolerance)."""
    from clinical_nlp.models.entities import evaluate_entity_model

    current, version = _current_model(store, before=number)
    if current is None:
        return {"promoted": True, "why": "first model"}
    if not dev or new_f1 is None:
        return {"promoted": True, "why": "no dev set: not compared (warning)", "previous": version}
    old_f1 = strict_f1(evaluate_entity_model(current, list(dev), labels=settings.labels))
    promoted = old_f1 is None or new_f1 >= old_f1 - settings.promotion_tolerance
    why = (
        f"dev strict F1 {new_f1:.3f} vs current {old_f1:.3f} (tolerance {settings.promotion_tolerance})"
        if old_f1 is not None
        else "current model not scorable"
    )
    if not promoted:
        logger.warning("round %d: retrained model kept out (%s); pre-annotation keeps %s", number, why, version)
    return {"promoted": promoted, "why": why, "previous": version, "previous_f1": old_f1, "new_f1": new_f1}


def round_status(project: Project) -> dict[str, Any]:
    """Rounds so far and, for an open round, Doccano progress per annotator."""
    from clinical_nlp import doccano

    store = Store(project.store_url)
    all_rounds = rounds(store)
    out: dict[str, Any] = {
        "rounds": [
            {
                "number": r["number"],
                "state": r["state"],
                "notes": len(r.get("batch", [])),
                "strategy": r.get("strategy"),
                "f1": strict_f1(r.get("metrics") or {}),
            }
            for r in all_rounds
        ]
    }
    if all_rounds and all_rounds[-1]["state"] == "pushed":
        settings = all_rounds[-1]["settings"]
        out["doccano"] = doccano.status(store, settings["doccano_project"], activity=True)
    return out
