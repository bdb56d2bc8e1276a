# The two commands of the quickstart: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: up test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## Start the platform in the foreground (local Ray + Serve + SQLite). Ctrl-C stops everything.
up: install
	$(BIN)/rayline up

## Install what the tests need and run the whole suite.
test: install
	$(BIN)/python -m pytest

## Measure run_pipeline against a bare Ray task (prints JSON).
bench: install
	$(BIN)/python benchmarks/run_pipeline_latency.py

clean:
	rm -rf $(VENV) build *.egg-info platform/*.egg-info
