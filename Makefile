# clinical-nlp: two commands from a fresh clone -> `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast lint bench model doccano-start doccano-stop chromium clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet -e '.[all]'
	touch $(STAMP)

## Headless Chromium and its WebDriver (Debian packages) for the report and the Doccano browser tests.
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  echo "installing Debian chromium and chromium-driver for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "warning: could not install chromium / chromium-driver"; }

doccano-start:
	bash scripts/doccano.sh start

doccano-stop:
	bash scripts/doccano.sh stop

## The main job: Doccano + three simulated active-learning rounds on the sample corpus.
demo: install
	bash scripts/demo.sh

## The whole suite (unit, property, integration against a real Doccano, slow ones too).
test: install chromium
	bash scripts/run_tests.sh

test-fast: install
	$(PY) -m pytest -q -m "not doccano and not slow"

## Formatting, lint and types: ruff format --check, ruff check, mypy (config in pyproject.toml).
lint: install
	$(VENV)/bin/ruff format --check clinical_nlp tests scripts
	$(VENV)/bin/ruff check clinical_nlp tests scripts
	$(VENV)/bin/mypy

bench: install
	$(PY) scripts/bench_assertions.py
	$(PY) scripts/bench_consensus.py
	$(PY) scripts/bench_doccano.py
	$(PY) scripts/bench_scale.py
	$(PY) scripts/bench_long_note.py

## Build the models shipped with the package (reproducible: fixed seeds, data hashes and metrics in each
## model's meta): the linear assertion model, the MiniLM assertion model of the accurate mode, and the
## default entity model (spaCy tagger, width 64, 128-d MiniLM vectors, Chia train + the NegEx/ConText
## development reports' marked findings as partial labels, early stopping on Chia dev),
## its score calibration and per-label thresholds (tune trials of splits/chia-dev-trials.json),
## the relation classifier with its MiniLM pair scorer, and the MiniLM PHI tagger of `deid --detector ensemble`.
model: install
	$(PY) scripts/train_assertion_model.py
	$(PY) scripts/train_assertion_transformer.py
	$(PY) scripts/negex_findings.py --part dev --output artifacts/negex_findings_dev.jsonl
	CORPORA=$$($(PY) -c "from clinical_nlp.config import shared_corpora_dir; print(shared_corpora_dir())") && \
	$(PY) -m clinical_nlp train entities --kind spacy --vector-dims 128 --width 64 --depth 4 \
	  --train $$CORPORA/chia/train.jsonl --dev $$CORPORA/chia/dev.jsonl \
	  --partial artifacts/negex_findings_dev.jsonl --output clinical_nlp/resources/entities/default --no-progress
	$(PY) scripts/calibrate_entity_model.py
	$(PY) scripts/bench_preannotation.py --choose-thresholds --apply
	$(PY) scripts/bench_relations.py --save clinical_nlp/resources/relations/default
	$(PY) scripts/train_deid_transformer.py
