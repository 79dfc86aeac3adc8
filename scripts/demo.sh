#!/usr/bin/env bash
# `make demo`: the main job on the bundled sample corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/demo.py "$@"
