# `make demo` and `make test` work on a fresh machine: each creates .venv when missing and
# installs the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Two test processes, one per core; an idle one takes tests from the other's queue, so
# the long worker and kill tests do not pile up at the end. Each process has its own
# sandbox, templates and browsers; every test its own database, Redis key prefix and
# ports. PYTEST_PARALLEL= runs serially.
PYTEST_PARALLEL ?= -n 2 --dist worksteal

.PHONY: demo test test-fast lint bench browser promtool clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's chromium and its driver, for the browser tests (never `playwright install`).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

# Debian's prometheus package, for promtool (the alert rules' tests).
promtool:
	@if ! command -v promtool >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq prometheus >/dev/null; \
	fi

demo: $(STAMP)
	$(BIN)/billing-sync demo

test: $(STAMP) browser promtool
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q $(PYTEST_PARALLEL)

# The inner loop: no browser and no slow tests.
test-fast: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_PARALLEL) -m "not browser and not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/sandbox.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
