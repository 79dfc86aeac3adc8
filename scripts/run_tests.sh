#!/usr/bin/env bash
# Start the local Doccano server, run the whole test suite, stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
started=0
if [ -f scripts/doccano.sh ]; then
  bash scripts/doccano.sh start
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then bash scripts/doccano.sh stop || true; fi; }
trap cleanup EXIT
mkdir -p artifacts
.venv/bin/python -m pytest -q -p no:cacheprovider --junitxml=artifacts/junit.xml "$@"
