#!/usr/bin/env python
"""Write the marked findings of the NegEx/ConText development reports as partially labelled notes.

Each row of ``<shared corpora>/negex_context/dev.jsonl`` is one clinical report sentence with one
marked finding. Only the rows of the *development* reports (``splits/negex-reports.json``) are
written, so the locked reports stay unseen by the entity model that trains on them. Output rows
``{id, text, spans: [{start, end, label: "Finding"}]}`` feed ``train entities --partial``: the span
only says "an entity overlaps here" (the corpus marks whole phrases such as "AORTIC VALVE IS
NORMAL", not Chia's entity bounds or types), every other token is unknown.

Usage: python scripts/negex_findings.py --output FILE [--part dev|locked]
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


def findings_rows(part: str = "dev") -> list[dict]:
    """One partially labelled row per marked finding of the ``part`` reports (offsets checked)."""
    rows = split_rows(load_rows(shared_corpora_dir() / "negex_context" / "dev.jsonl"), part)
    out = []
    for r in rows:
        if not 0 <= r["start"] < r["end"] <= len(r["text"]):
            raise SystemExit(f"row {r['id']}: concept offsets {r['start']}-{r['end']} outside its text")
        out.append(
            {"id": r["id"], "text": r["text"], "spans": [{"start": r["start"], "end": r["end"], "label": "Finding"}]}
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--part", choices=("dev", "locked"), default="dev")
    args = ap.parse_args(argv)
    rows = findings_rows(args.part)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} partially labelled sentences ({args.part} reports) written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
