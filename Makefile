# The two commands of the quickstart: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What is installed is remembered by stamps named after pyproject.toml and this file: a change to
# either installs again, nothing else does. Two stamps: the platform alone (`make up`), and the
# platform with what the tests need (`make test`).
SUM := $(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
PLATFORM_STAMP := $(VENV)/.installed-platform-$(SUM)
TEST_STAMP := $(VENV)/.installed-test-$(SUM)

.PHONY: up test test-unit lint install install-test postgres chromium bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The platform and its dependencies only.
$(PLATFORM_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	rm -f $(VENV)/.installed-platform-* $(VENV)/.installed-[0-9]* && touch $@

# The test and notebooks extras: the tests run the notebooks against a platform started from this
# environment, and the notebooks' pipelines (torch, sentence-transformers) run in the platform's.
$(TEST_STAMP): $(PLATFORM_STAMP)
	$(BIN)/pip install --quiet -e '.[test,notebooks]'
	# The published Craft AI client, to test wire compatibility. Without its weaviate-client
	# dependency (vector databases, which Rayline answers 501): it would pin grpcio below what
	# Ray Serve installs. Its other dependencies are in the test extras.
	$(BIN)/pip install --quiet --no-deps craft-ai-sdk==0.74.7
	rm -f $(VENV)/.installed-test-* && touch $@

install: $(PLATFORM_STAMP)

install-test: $(TEST_STAMP)

## Start the platform in the foreground (local Ray + Serve + SQLite). Ctrl-C stops everything.
## Installs the platform only; `make install-test` adds what the notebooks' pipelines need.
up: install
	$(BIN)/rayline up

## Install what the tests need, run the static checks, then the whole suite.
test: install-test postgres chromium lint
	$(BIN)/python -m pytest

## The quick loop: install what the tests need, then only the tests that start no platform (every
## test outside tests/integration; tests/conftest.py marks those `integration`). No static checks.
test-unit: install-test
	$(BIN)/python -m pytest -m "not integration" -q

## The static checks, configured in pyproject.toml: ruff's lint rules and its formatting, and mypy
## over platform/rayline and serve_apps. Each must find nothing.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## PostgreSQL's server programs, for the store's tests on PostgreSQL (they start their own server
## on 127.0.0.1). Installed from Debian's packages when missing and when run as root, as in CI;
## elsewhere those tests skip and say how to enable them.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL is not installed and this is not root: its tests will skip (apt-get install postgresql)."; fi; \
	fi

## Debian's Chromium, for the web console's browser tests (tests/integration/test_console.py drives
## it headless with Playwright for Python, from the test extra, through its executable_path: no
## `playwright install`, which would download a browser build of its own). Installed when missing
## and when run as root, as in CI; elsewhere those tests skip and say how to enable them.
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is not installed and this is not root: the console's browser tests will skip (apt-get install chromium)."; fi; \
	fi

## The benchmark suite, each figure beside its baseline measured in the same run (JSON out, also
## written to benchmarks/results/); needs wrk, installed from Debian's packages if missing.
bench: install-test
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/suite.py

clean:
	rm -rf $(VENV) build *.egg-info platform/*.egg-info
