"""`make demo`: three simulated active-learning rounds over the local Doccano server.

Runs on the bundled Chia sample (corpora/chia): a fresh project in
./demo_project, two simulated annotators and an expert adjudicator acting
through Doccano's REST API, the fast entity model retrained each round.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default="demo_project")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from clinical_nlp.demo import run_demo
    from clinical_nlp.errors import ClinicalNLPError

    try:
        summary = run_demo(args.workdir, rounds_n=args.rounds, batch=args.batch, seed=args.seed)
    except ClinicalNLPError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 2
    print()
    print(f"project:        {summary['project']}")
    print(f"round report:   {summary['report']}")
    print(f"learning curve: {summary['plot']}")
    print(f"dataset report: {summary.get('dataset_report', 'n/a')}")
    url = os.environ.get("DOCCANO_URL", "http://127.0.0.1:{}".format(os.environ.get("DOCCANO_PORT", "8000")))
    print(
        f"Doccano is still running at {url} (admin login from DOCCANO_ADMIN_USER/PASSWORD, "
        "default admin/password); stop it with: bash scripts/doccano.sh stop"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
