# The two commands of the README: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit integration e2e schemas bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Start the broker and all five services (Ctrl-C stops them).
run: $(STAMP)
	$(BIN)/baton up

## Lint, type-check and run the whole suite.
test: $(STAMP)
	$(BIN)/ruff check shared services baton tests bench
	$(BIN)/ruff format --check shared services baton tests bench
	$(BIN)/mypy
	scripts/ensure-browser
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check --fix shared services baton tests bench
	$(BIN)/ruff format shared services baton tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/contract

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

e2e: $(STAMP)
	scripts/ensure-browser
	$(BIN)/python -m pytest -q tests/e2e

## Benchmarks (not tests): each figure against a raw baseline of the same run; see bench/README.md.
bench: $(STAMP)
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.handoff_latency
	$(BIN)/python -m bench.lead_ingest
	$(BIN)/python -m bench.bulk_import
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.kpi_ingest
	$(BIN)/python -m bench.kpi_query

## Regenerate docs/asyncapi.yaml and docs/schemas/ from the event models.
schemas: $(STAMP)
	$(BIN)/baton schemas

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
