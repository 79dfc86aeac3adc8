"""Relations between spans, compared by what they link: agreement, consensus and edit counts.

A relation is a mapping ``{"type", "arg1", "arg2"}`` over span ids (Chia's group relations
``{"type", "args": [...]}`` link consecutive members). Two annotators' relations are the same
when their arguments have the same offsets and label and the type is the same; for an
undirected type (``AND``, ``OR``) the order of the arguments does not count. Pure functions:
no store, no server, no NLP library.

Example:
    >>> from clinical_nlp.types import Span
    >>> spans = (Span(0, 5, "Measurement", id="T1"), Span(8, 10, "Value", id="T2"))
    >>> keys = relation_keys(spans, [{"type": "Has_value", "arg1": "T1", "arg2": "T2"}])
    >>> sorted(keys)
    [((0, 5, 'Measurement'), (8, 10, 'Value'), 'Has_value')]
    >>> relation_edits(keys, set())["relations_deleted"]
    1
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from clinical_nlp.config import LabelSchema
from clinical_nlp.errors import InputFormatError
from clinical_nlp.metrics import PRF
from clinical_nlp.types import Span

Arg = tuple[int, int, str]
#: (head, tail, type); for an undirected type head <= tail
RelKey = tuple[Arg, Arg, str]


def with_span_ids(spans: Sequence[Span], prefix: str = "T") -> tuple[Span, ...]:
    """The spans, each with an id: kept where given, ``T1``, ``T2`` … (not yet used) where missing."""
    used = {s.id for s in spans if s.id}
    out, k = [], 0
    for s in spans:
        if s.id:
            out.append(s)
            continue
        k += 1
        while f"{prefix}{k}" in used:
            k += 1
        out.append(replace(s, id=f"{prefix}{k}"))
    return tuple(out)


def binary_relations(relations: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """``(type, arg1 id, arg2 id)`` for every link; a group relation (``args``) links consecutive members."""
    out = []
    for rel in relations:
        kind = str(rel.get("type") or "")
        if "arg1" in rel and "arg2" in rel:
            out.append((kind, str(rel["arg1"]), str(rel["arg2"])))
        elif isinstance(rel.get("args"), list):
            args = [str(a) for a in rel["args"]]
            out += [(kind, a, b) for a, b in itertools.pairwise(args)]
        else:
            raise InputFormatError(f"relation {dict(rel)!r} has neither arg1/arg2 nor args")
    return out


def relation_keys(
    spans: Sequence[Span],
    relations: Iterable[Mapping[str, Any]],
    undirected: frozenset[str] = frozenset(),
    *,
    where: str = "",
) -> set[RelKey]:
    """The relations as keys over the arguments' offsets and labels; an unknown span id is an error."""
    by_id = {s.id: s for s in spans if s.id}
    keys: set[RelKey] = set()
    for kind, a, b in binary_relations(relations):
        if not kind:
            raise InputFormatError(f"{where}relation {a}->{b} has no type")
        missing = [x for x in (a, b) if x not in by_id]
        if missing:
            raise InputFormatError(f"{where}relation {kind} {a}->{b} refers to unknown span id(s) {missing}")
        keys.add(make_key(by_id[a], by_id[b], kind, undirected))
    return keys


def make_key(head: Span, tail: Span, kind: str, undirected: frozenset[str] = frozenset()) -> RelKey:
    h, t = (head.start, head.end, head.label), (tail.start, tail.end, tail.label)
    if kind in undirected and t < h:
        h, t = t, h
    return (h, t, kind)


def relations_for(spans: Sequence[Span], keys: Iterable[RelKey]) -> list[dict[str, str]]:
    """Keys back to ``{"type", "arg1", "arg2"}`` over the ids of ``spans`` (keys whose arguments are not
    among the spans are dropped), in a stable order."""
    ids = {(s.start, s.end, s.label): s.id for s in spans if s.id}
    out = []
    for h, t, kind in sorted(keys, key=lambda k: (k[0], k[1], k[2])):
        if h in ids and t in ids:
            out.append({"type": kind, "arg1": str(ids[h]), "arg2": str(ids[t])})
    return out


def relation_prf(reference: Iterable[RelKey], predicted: Iterable[RelKey]) -> dict[str, PRF]:
    """Micro P/R/F1 over every key (``"all"``) and per relation type."""
    ref, pred = set(reference), set(predicted)
    out = {"all": PRF(len(ref & pred), len(pred - ref), len(ref - pred))}
    for kind in sorted({k[2] for k in ref | pred}):
        r, p = {k for k in ref if k[2] == kind}, {k for k in pred if k[2] == kind}
        out[kind] = PRF(len(r & p), len(p - r), len(r - p))
    return out


def relation_agreement(by_note: Mapping[str, Mapping[str, set[RelKey]]]) -> dict[str, Any]:
    """Pairwise relation F1 between annotators, pooled over the notes both read (micro), overall and per type.

    ``by_note[note][annotator]`` are her relation keys. ``relation_f1`` is the mean over annotator
    pairs of the pooled F1 (symmetric: F1 does not depend on which side is the reference);
    ``per_type`` pools every pair (``support``: the links of that type per side, averaged over the two
    sides of each pair). Pairs where neither annotator linked anything count as agreement
    on nothing and are left out; ``None`` when no pair linked anything.
    """
    pooled: dict[tuple[str, str], dict[str, list[int]]] = {}
    for by_ann in by_note.values():
        for a, b in itertools.combinations(sorted(by_ann), 2):
            for kind, prf in relation_prf(by_ann[a], by_ann[b]).items():
                c = pooled.setdefault((a, b), {}).setdefault(kind, [0, 0, 0])
                c[0], c[1], c[2] = c[0] + prf.tp, c[1] + prf.fp, c[2] + prf.fn
    pair_f1 = [PRF(*c["all"]).f1 for c in pooled.values() if sum(c["all"])]
    types = sorted({k for c in pooled.values() for k in c if k != "all"})
    per_type = {}
    for kind in types:
        tp, fp, fn = (sum(c.get(kind, [0, 0, 0])[i] for c in pooled.values()) for i in range(3))
        per_type[kind] = {"f1": PRF(tp, fp, fn).f1, "support": tp + (fp + fn) / 2}
    links = Counter(k[2] for by_ann in by_note.values() for keys in by_ann.values() for k in keys)
    return {
        "relation_f1": sum(pair_f1) / len(pair_f1) if pair_f1 else None,
        "pairs": len(pair_f1),
        "per_type": per_type,
        "links": dict(sorted(links.items())),
    }


def majority_relations(by_annotator: Mapping[str, set[RelKey]], *, min_votes: float = 0.5) -> set[RelKey]:
    """Keys more than ``min_votes`` of the note's annotators made (a tie is not a majority)."""
    n = len(by_annotator)
    votes = Counter(k for keys in by_annotator.values() for k in keys)
    return {k for k, v in votes.items() if n and v / n > min_votes}


def relation_edits(pre: Iterable[RelKey], final: Iterable[RelKey]) -> dict[str, int]:
    """What an annotator did to the suggested relations: kept, added, deleted, and changed type
    (the same two arguments linked with another type: counted once, not as a deletion plus an addition)."""
    pre_set, final_set = set(pre), set(final)
    gone, new = pre_set - final_set, final_set - pre_set
    gone_pairs = Counter((h, t) for h, t, _ in gone)
    retyped = 0
    for h, t, _ in sorted(new):
        if gone_pairs[(h, t)] > 0:
            gone_pairs[(h, t)] -= 1
            retyped += 1
    return {
        "relations_kept": len(pre_set & final_set),
        "relations_added": len(new) - retyped,
        "relations_deleted": len(gone) - retyped,
        "relations_changed_type": retyped,
    }


def relation_problems(spans: Sequence[Span], relations: Iterable[Mapping[str, Any]], schema: LabelSchema) -> list[str]:
    """Relations the schema does not allow: an unknown type, or a head/tail label pair the type forbids."""
    by_id = {s.id: s for s in spans if s.id}
    known = {r.name: r for r in schema.relations}
    problems = []
    for kind, a, b in binary_relations(relations):
        head, tail = by_id.get(a), by_id.get(b)
        if kind not in known:
            problems.append(f"relation type {kind!r} is not in the label schema (known: {sorted(known)})")
        elif head is None or tail is None:
            problems.append(f"relation {kind} {a}->{b} refers to an unknown span")
        elif not known[kind].allows(head.label, tail.label):
            problems.append(
                f"relation {kind} from {head.label} {head.text!r} [{head.start}, {head.end}) to {tail.label} "
                f"{tail.text!r} [{tail.start}, {tail.end}) is not allowed: {kind} links {known[kind].heads} "
                f"to {known[kind].tails}"
            )
    return problems
