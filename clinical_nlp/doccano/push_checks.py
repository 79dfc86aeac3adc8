"""What a push checks before it writes anything: labels and relations, qualifications, the PHI policy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import Guideline, LabelSchema
from clinical_nlp.consensus.relations import binary_relations, relation_problems
from clinical_nlp.errors import InputFormatError, PolicyError
from clinical_nlp.store import Store
from clinical_nlp.types import ATTRIBUTE_VALUES, AnnotatedNote

PushRows = Sequence[tuple[AnnotatedNote, Mapping[str, Any]]]


def check_qualified(store: Store, annotators: Sequence[str], guideline: Guideline) -> None:
    """Refuse annotators not registered or lacking a qualification that a schema label ``requires``
    (on this guideline version): her Doccano project offers every label of the schema."""
    from clinical_nlp.annotators import Registry, check_assignment

    registry, problems = Registry(store), []
    for a in annotators:
        try:
            check_assignment(
                registry, a, guideline.schema.label_names, guideline.schema, guideline_version=guideline.version
            )
        except PolicyError as e:
            problems.append(str(e))
    if problems:
        raise PolicyError(
            "push refused, nothing sent: " + "; ".join(problems) + f" (guideline version {guideline.version}; "
            "register or update each with: clinical-nlp annotators add NAME --license-id ... [--update])"
        )


def check_phi_policy(
    store: Store,
    audit: AuditLog,
    project_name: str,
    rows: PushRows,
    plan: Mapping[str, Sequence[str]],
    *,
    require_deid: bool,
    allow_phi: bool,
    actor: str | None,
    phi_access_check: Callable[[str], bool] | None,
) -> None:
    """Refuse notes without a de-identification record for exactly the text pushed (an input field saying
    "deidentified" does not count) unless an actor with PHI access overrides and every annotator who
    would receive one of those notes has PHI access too (audited with their names)."""
    if require_deid:
        from clinical_nlp.services.privacy import open_items

        waiting = sorted({it["note_id"] for it in open_items(store, [d.id for d, _ in rows])})
        if waiting:
            raise PolicyError(
                f"{len(waiting)} note(s) have possible identifiers awaiting the privacy officer (first: "
                f"{waiting[:3]}): clinical-nlp deid-review list, then deid-review decide"
            )
    phi = [d.id for d, _ in rows if require_deid and not store.is_deidentified(d.id, d.text)]
    if not phi:
        return
    stale = [nid for nid in phi if store.is_deidentified(nid)]  # a record, for another text of the note
    if stale and not allow_phi:
        raise PolicyError(
            f"{len(stale)} note(s) differ from the de-identified text the store holds for them (first: "
            f"{stale[:3]}): this file is not their current de-identified text (the raw notes, an older deid "
            "output, or words the privacy review put back since); 'clinical-nlp deid-review notes -o FILE' "
            "writes them as they are now: pre-annotate that file"
        )
    if not allow_phi:
        raise PolicyError(
            f"{len(phi)} note(s) have no de-identification record for this text (first: {phi[:3]}): run "
            "'clinical-nlp deid --project-dir ...' on them (an input field 'deidentified' is not a record), "
            "or pass --allow-phi with --actor (a user with PHI access; every receiving annotator needs it too)"
        )
    if not actor:
        raise PolicyError("--allow-phi needs an actor name (--actor or CLINICAL_NLP_ACTOR)")
    if phi_access_check is None:  # default: the annotator registry's phi_access flag
        from clinical_nlp.annotators import has_phi_access

        def phi_access_check(who: str) -> bool:
            return has_phi_access(store, who)

    if not phi_access_check(actor):
        raise PolicyError(f"actor {actor!r} has no PHI access; refusing to push {len(phi)} identifiable note(s)")
    receivers = sorted({a for nid in phi for a in plan.get(nid, ())})
    without = [a for a in receivers if not phi_access_check(a)]
    if without:
        raise PolicyError(
            f"annotator(s) {without} have no PHI access and would receive identifiable notes; refusing "
            f"{len(phi)} note(s) (register their PHI access, or de-identify the notes)"
        )
    audit.append(
        "override",
        actor=actor,
        details={"rule": "require_deid", "project": project_name, "notes": phi, "receivers": receivers},
    )


def dedupe_spans(doc: AnnotatedNote) -> AnnotatedNote:
    """Drop spans identical to an earlier one in offsets, label and attributes (a relation to a dropped
    span is moved to the one kept)."""
    seen: dict[tuple[Any, ...], Any] = {}
    kept, moved = [], {}
    for sp in doc.spans:
        key = (sp.start, sp.end, sp.label, tuple(sorted(sp.attributes.items())))
        if key not in seen:
            seen[key] = sp.id
            kept.append(sp)
        elif sp.id is not None:
            moved[sp.id] = seen[key]
    if len(kept) == len(doc.spans):
        return doc
    relations = tuple(
        {"type": k, "arg1": moved.get(a, a), "arg2": moved.get(b, b)} for k, a, b in binary_relations(doc.relations)
    )
    return replace(doc, spans=tuple(kept), relations=relations)


def validate_push_rows(rows: PushRows, schema: LabelSchema) -> None:
    """Note ids are unique; every span label and attribute value exists in the schema (they become Doccano labels);
    every relation's type and argument labels are allowed by the schema."""
    names = set(schema.label_names)
    seen: set[str] = set()
    for doc, _ in rows:
        if doc.id in seen:
            raise InputFormatError(f"note {doc.id!r} appears twice in the push; note ids must be unique")
        seen.add(doc.id)
        for sp in doc.spans:
            if sp.fragments is not None:
                raise InputFormatError(
                    f"note {doc.id!r}: discontinuous span {sp.label!r} {list(sp.fragments)} "
                    "cannot be shown in Doccano 1.8.4 (contiguous spans only)"
                )
            if sp.label not in names:
                raise InputFormatError(
                    f"note {doc.id!r}: span [{sp.start}, {sp.end}) has label {sp.label!r} "
                    f"not in the label schema {sorted(names)}"
                )
            for attr, value in sp.attributes.items():
                allowed = schema.attributes[attr].values if attr in schema.attributes else ATTRIBUTE_VALUES.get(attr)
                if allowed is not None and value not in allowed:
                    raise InputFormatError(
                        f"note {doc.id!r}: span {sp.label!r} [{sp.start}, {sp.end}) has "
                        f"{attr}={value!r}, allowed: {list(allowed)}"
                    )
        if doc.relations and not schema.relations:
            raise InputFormatError(
                f"note {doc.id!r} has relations but the label schema has no relation types (add 'relations:')"
            )
        ids = [sp.id for sp in doc.spans if sp.id]
        if len(ids) != len(set(ids)):
            raise InputFormatError(
                f"note {doc.id!r}: span ids repeat ({sorted(i for i in set(ids) if ids.count(i) > 1)})"
            )
        bad = relation_problems(doc.spans, doc.relations, schema)
        if bad:
            raise InputFormatError(f"note {doc.id!r}: " + "; ".join(bad))
