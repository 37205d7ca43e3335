# Everything a user runs. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV ?= .venv
# Use the active virtual/conda environment if there is one; otherwise .venv (created by `make install`).
ACTIVE_ENV := $(or $(VIRTUAL_ENV),$(CONDA_PREFIX))
ENV_DIR := $(or $(ACTIVE_ENV),$(VENV))
PYTHON := $(if $(ACTIVE_ENV),python,$(VENV)/bin/python)
INSTALLED := $(ENV_DIR)/.degradation-installed
ARGS ?=

.PHONY: help install test test-slow train clean-runs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(INSTALLED) ## create .venv (unless an environment is active) and install the package with its dependencies

$(INSTALLED): pyproject.toml
	@if [ -z "$(ACTIVE_ENV)" ] && [ ! -x "$(VENV)/bin/python" ]; then python3 -m venv $(VENV); fi
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -e ".[dev]"
	@touch $@

test: install ## run the fast test suite (CPU, no network, tiny synthetic data)
	$(PYTHON) -m pytest -m "not slow"

test-slow: install ## run only the longer checks
	$(PYTHON) -m pytest -m slow

train: install ## train one network: make train ARGS="model=plain model.depth=56 seed=1"
	$(PYTHON) -m degradation.train $(ARGS)

clean-runs: ## delete runs/ (all run directories!)
	rm -rf runs
