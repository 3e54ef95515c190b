# Two commands do everything: `make run` and `make test`.
SHELL := /bin/bash
# The first Python 3.11+ on PATH. Its errors are dropped: a pyenv shim of a version that
# is not installed answers "command not found" on stderr.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { echo $$p; break; }; done)
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

# Setting up is quiet: pip's output (and the build backend's warnings) go to SETUP_LOG,
# which is printed only when a step fails.
SETUP_LOG := $(VENV)/setup.log
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check --no-input
quietly = { $(1); } >>$(SETUP_LOG) 2>&1 || { cat $(SETUP_LOG) >&2; echo "failed: $(1) (log: $(SETUP_LOG))" >&2; exit 1; }

# One line says that setting up starts: when the venv is made, or when an existing one is
# brought up to date (pyproject.toml changed, or the development tools are added).
VENV_EXISTED := $(wildcard $(BIN)/python)
SAY_UPDATING = $(if $(VENV_EXISTED),echo "Updating $(VENV) ($(1); log: $(SETUP_LOG)) ...",:)

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	@echo "Setting up $(VENV) with $(PYTHON), once (log: $(SETUP_LOG)) ..."
	@$(PYTHON) -m venv $(VENV)
	@$(call quietly,$(PIP) install --upgrade pip)

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	@$(call SAY_UPDATING,the service)
	@$(call quietly,$(PIP) install -e .)
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	@$(call SAY_UPDATING,the service and the development tools)
	@$(call quietly,$(PIP) install -e '.[dev]')
	@touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	@$(BIN)/devicefactory demo --base-url http://$(HOST):$(PORT)
	@$(BIN)/devicefactory serve --host $(HOST) --port $(PORT)

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
