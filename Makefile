# Two commands do everything: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-sqlite test-postgres check bench clean help

help:
	@echo "make run    set up everything and start the service on http://$(HOST):$(PORT)"
	@echo "make test   set up everything and run the whole test suite"
	@echo "make check  ruff and mypy (strict)"
	@echo "make bench  the benchmarks of the hot paths"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/devicefactory demo --base-url http://$(HOST):$(PORT)
	$(BIN)/devicefactory serve --host $(HOST) --port $(PORT)

# The suite runs on SQLite; with DEVICEFACTORY_TEST_DATABASE_URL set it runs on
# PostgreSQL too (each parallel worker in a database of its own beside the one named).
TEST_WORKERS ?= 2
test: $(VENV)/.dev
	DEVICEFACTORY_TEST_DATABASE_URL= $(BIN)/pytest -n $(TEST_WORKERS)
	@if [ -n "$$DEVICEFACTORY_TEST_DATABASE_URL" ]; then \
		echo "== again on $$DEVICEFACTORY_TEST_DATABASE_URL"; \
		$(BIN)/pytest -n $(TEST_WORKERS) -m "not browser"; \
	fi

check: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: $(VENV)/.dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
