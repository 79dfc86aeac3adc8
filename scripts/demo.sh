#!/usr/bin/env bash
# `make demo`: start the local Doccano server and run the main job on the bundled samples.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/doccano.sh start
exec .venv/bin/python scripts/demo.py "$@"
