#!/usr/bin/env python
"""Write the marked findings of the NegEx/ConText development reports as partially labelled notes.

Each row of ``<shared corpora>/negex_context/dev.jsonl`` is one clinical report sentence with one
marked finding. Only the rows of the *development* reports (``splits/negex-reports.json``) are
written, so the locked reports stay unseen by the entity model that trains on them. Output rows
``{id, text, spans: [{start, end, label}]}`` feed ``train entities --partial``: only the finding's
tokens are labelled, every other token of the sentence is unknown (it may hold other entities).
The label is ``Condition``: ConText's marked concepts are clinical conditions (Chapman et al. 2007,
Harkema et al. 2009). With ``--label Finding`` (not a model label) the span only says "an entity
overlaps here": the corpus marks whole phrases ("AORTIC VALVE IS NORMAL"), not Chia's bounds.
Closed-class words outside the finding (pronouns, articles, auxiliaries: :data:`CLOSED_CLASS`) get
``O`` spans, taught as outside every entity, unless ``--no-negatives``: without them the sentences
give no negative evidence at all, and the model learned to tag "She" as a Condition in EHR prose.

Usage: python scripts/negex_findings.py --output FILE [--part dev|locked] [--label Condition] [--no-negatives]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_assertion_model import load_rows, split_rows

from clinical_nlp.config import shared_corpora_dir
from clinical_nlp.models.entities.spacy_model import OUTSIDE

#: closed-class words no Chia entity is made of alone (pronouns, articles, auxiliaries): outside the
#: finding they are taught as outside every entity, the EHR sentence's only negative evidence
CLOSED_CLASS = frozenset(
    "she he her his him hers they them their it its we our i me my you your "
    "the a an this that these those is are was were be been being am has have had does did do".split()
)
_WORD = re.compile(r"[A-Za-z]+")


def outside_spans(text: str, start: int, end: int) -> list[dict]:
    """``O`` spans over the closed-class words of ``text`` outside ``[start, end)``."""
    return [
        {"start": m.start(), "end": m.end(), "label": OUTSIDE}
        for m in _WORD.finditer(text)
        if m.group().lower() in CLOSED_CLASS and (m.end() <= start or m.start() >= end)
    ]


def findings_rows(part: str = "dev", label: str = "Condition", negatives: bool = True) -> list[dict]:
    """One partially labelled row per marked finding of the ``part`` reports (offsets checked);
    ``negatives``: also ``O`` spans over the sentence's closed-class words outside the finding."""
    rows = split_rows(load_rows(shared_corpora_dir() / "negex_context" / "dev.jsonl"), part)
    out = []
    for r in rows:
        if not 0 <= r["start"] < r["end"] <= len(r["text"]):
            raise SystemExit(f"row {r['id']}: concept offsets {r['start']}-{r['end']} outside its text")
        spans = [{"start": r["start"], "end": r["end"], "label": label}]
        if negatives:
            spans += outside_spans(r["text"], r["start"], r["end"])
        out.append({"id": r["id"], "text": r["text"], "spans": spans})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--part", choices=("dev", "locked"), default="dev")
    ap.add_argument(
        "--label", default="Condition", help="the findings' label (one the model does not learn: any entity)"
    )
    args = ap.parse_args(argv)
    rows = findings_rows(args.part, args.label)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} partially labelled sentences ({args.part} reports) written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
