# Two commands: `make run` (install, build the index, start) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False
export ANONYMIZED_TELEMETRY ?= False

.PHONY: run install test test-fast lint bench bench-scale eval soak clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

install: $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[test,e5,st]'
	touch $@

run: install
	$(BIN)/policy-assistant ingest
	$(BIN)/policy-assistant serve

test: $(TEST_STAMP)
	./.ci/ensure-chromium
	$(BIN)/ruff check corpus retrieval assistant eval ui tests
	$(BIN)/pytest -q

test-fast: $(TEST_STAMP)
	$(BIN)/pytest -q -m "not model and not browser and not st"

lint: $(TEST_STAMP)
	$(BIN)/ruff check corpus retrieval assistant eval ui tests
	$(BIN)/mypy

bench: $(TEST_STAMP)
	$(PY) -m eval.bench

# Recombined shipped clauses at 10k and 100k, embedded and server mode side by side (figures, no test).
# SIZES=10000 make bench-scale for a shorter run.
SIZES ?= 10000,100000
bench-scale: $(TEST_STAMP)
	$(PY) -m eval.bench_scale --sizes $(SIZES)

# 100 keep-alive clients for 60 s, then 1,200 hostile requests, against a served index (figures, no test).
soak: $(TEST_STAMP)
	$(BIN)/policy-assistant ingest
	$(PY) -m eval.soak --clients 100 --seconds 60 --hostile 1200 --slow 200

# The dev set in process; fails when a headline metric falls below eval/baseline.json (also run by
# `make test` through tests/test_eval_runner.py::test_dev_set_meets_the_committed_baseline).
eval: $(TEST_STAMP)
	$(BIN)/policy-assistant eval --out eval/out --baseline eval/baseline.json

clean:
	rm -rf $(VENV) data
