# The two commands of the quickstart: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: up test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	# The published Craft AI client, to test wire compatibility. Without its weaviate-client
	# dependency (vector databases, which Rayline answers 501): it would pin grpcio below what
	# Ray Serve installs. Its other dependencies are in the test extras.
	$(BIN)/pip install --quiet --no-deps craft-ai-sdk==0.74.7
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## Start the platform in the foreground (local Ray + Serve + SQLite). Ctrl-C stops everything.
up: install
	$(BIN)/rayline up

## Install what the tests need and run the whole suite.
test: install
	$(BIN)/python -m pytest

## Measure against baselines in the same run (prints JSON): run_pipeline vs a bare Ray task,
## endpoints vs bare uvicorn and raw Serve (needs wrk, installed from Debian's packages if missing).
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/run_pipeline_latency.py
	$(BIN)/python benchmarks/endpoint_latency.py
	$(BIN)/python benchmarks/parallel_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info platform/*.egg-info
