"""Speed of clinical-nlp deid vs Microsoft Presidio's analyzer on the shared PhysioNet deid corpus.

Presidio is NOT a project dependency: install it in its own venv first
(``python3.11 -m venv .bench/presidio && .bench/presidio/bin/pip install presidio-analyzer``).
No spaCy English model is installable from the package registries offline, so
Presidio's NlpEngine is configured with a blank spaCy "en" pipeline (its
pattern recognizers still run; the NER-based PERSON/LOCATION recognizers find
nothing). The JSON output says so. Both tools process the same notes in the
same run; the ratio is presidio_seconds / ours_seconds (>= 1 means we are at
least as fast). Model/engine loading is timed separately from analysis.

Usage: python scripts/bench_deid_presidio.py [--presidio-python .bench/presidio/bin/python] [--output out.json]
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
n = 0
for t in texts:
    n += len(analyzer.analyze(text=t, language="en"))
print(json.dumps({"load_seconds": load, "analyze_seconds": time.perf_counter() - t1, "entities": n,
                  "notes": len(texts)}))
"""


def run_ours(path: Path) -> dict:
    t0 = time.perf_counter()
    from clinical_nlp.deid import Detector
    from clinical_nlp.deid.core import SurrogateMaker, apply_replacements

    det = Detector()
    maker = SurrogateMaker(b"bench")
    texts = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 0
    for row in texts:
        spans = det.detect(row["text"])
        apply_replacements(row["text"], spans, str(row.get("patient")), maker)  # full de-identification
        n += len(spans)
    return {"load_seconds": load, "analyze_seconds": time.perf_counter() - t1, "entities": n, "notes": len(texts)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=shared_corpora_dir() / "deid_physionet" / "notes.jsonl")
    ap.add_argument("--presidio-python", type=Path, default=ROOT / ".bench" / "presidio" / "bin" / "python")
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()
    if not args.presidio_python.exists():
        sys.exit(f"{args.presidio_python} not found; see this script's docstring to install Presidio")
    ours = run_ours(args.corpus)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(PRESIDIO_SCRIPT)
    proc = subprocess.run(
        [str(args.presidio_python), handle.name, str(args.corpus)], capture_output=True, text=True, timeout=1200
    )
    Path(handle.name).unlink()
    if proc.returncode:
        sys.exit(f"presidio run failed:\n{proc.stderr[-3000:]}")
    presidio = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {
        "corpus": str(args.corpus.name),
        "notes": ours["notes"],
        "ours": ours,
        "presidio": presidio,
        "presidio_config": "AnalyzerEngine defaults, SpacyNlpEngine with a blank spaCy 'en' model "
        "(no English model installable offline)",
        "speed_ratio_presidio_over_ours": presidio["analyze_seconds"] / ours["analyze_seconds"],
        "ours_includes": "detection + surrogate replacement; Presidio: analysis only",
    }
    print(json.dumps(result, indent=2))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return check_targets([Target("speed vs Presidio's analyzer", result["speed_ratio_presidio_over_ours"], ">=", 1.0)])


if __name__ == "__main__":
    raise SystemExit(main())
