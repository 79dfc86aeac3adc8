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

Usage: python scripts/negex_findings.py --output FILE [--part dev|locked] [--label Condition]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_assertion_model import load_rows, split_rows

from clinical_nlp.config import shared_corpora_dir


def findings_rows(part: str = "dev", label: str = "Condition") -> list[dict]:
    """One partially labelled row per marked finding of the ``part`` reports (offsets checked)."""
    rows = split_rows(load_rows(shared_corpora_dir() / "negex_context" / "dev.jsonl"), part)
    out = []
    for r in rows:
        if not 0 <= r["start"] < r["end"] <= len(r["text"]):
            raise SystemExit(f"row {r['id']}: concept offsets {r['start']}-{r['end']} outside its text")
        out.append(
            {"id": r["id"], "text": r["text"], "spans": [{"start": r["start"], "end": r["end"], "label": label}]}
        )
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
