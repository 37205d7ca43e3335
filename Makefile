# Everything a user runs. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV ?= .venv
# Use the active virtual/conda environment if there is one; otherwise .venv (created by `make install`).
ACTIVE_ENV := $(or $(VIRTUAL_ENV),$(CONDA_PREFIX))
ENV_DIR := $(or $(ACTIVE_ENV),$(VENV))
PYTHON := $(if $(ACTIVE_ENV),python,$(VENV)/bin/python)
VENV_BIN := $(if $(ACTIVE_ENV),,$(VENV)/bin/)
INSTALLED := $(ENV_DIR)/.degradation-installed
ARGS ?=
# Sweep variables (empty = the sweep config's value): make sweep-cifar SEEDS=0,1 DEPTHS=20,56 LAUNCHER=joblib JOBS=4
SEEDS ?=
DEPTHS ?=
ARCHS ?=
LAUNCHER ?= local
JOBS ?=
NAME ?=
EXTRA ?=
DRY ?=
SWEEP_ARGS = $(if $(ARCHS),model=$(ARCHS)) $(if $(DEPTHS),model.depth=$(DEPTHS)) $(if $(SEEDS),seed=$(SEEDS)) \
	launcher=$(LAUNCHER) $(if $(JOBS),jobs=$(JOBS)) $(if $(NAME),name=$(NAME)) $(if $(DRY),dry_run=true) $(EXTRA)
SWEEP ?=
MUTANTS ?=
FIGURE_ARGS ?=
ANALYSIS ?= all
ANALYSIS_ARGS ?=
BENCH_ARGS ?=
OFFLINE_WANDB_RUNS = $(wildcard runs/*/*/seed=*/wandb/offline-run-*)

.PHONY: help install install-unlocked lock lint format test test-slow test-gpu mutants train sweep-cifar sweep-resnets sweep-quick sweep-cpu figures analyze bench wandb-sync clean-runs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: ## install exactly uv.lock (the tested versions) into .venv, or into the active virtual/conda environment
	@tools/environment.sh install "$(ENV_DIR)" $(if $(ACTIVE_ENV),active)
	@touch $(INSTALLED)

install-unlocked: ## install the newest releases pyproject.toml allows instead (not the tested set; runs say what differs)
	@tools/environment.sh install-unlocked "$(ENV_DIR)" $(if $(ACTIVE_ENV),active)
	@touch $(INSTALLED)

lock: ## move every version in uv.lock to the newest release (then test it: docs/environment.md)
	@tools/environment.sh lock "$(ENV_DIR)" $(if $(ACTIVE_ENV),active)

# The other targets need an environment, locked unless install-unlocked made it; a new lock installs again.
$(INSTALLED): pyproject.toml uv.lock
	@tools/environment.sh install "$(ENV_DIR)" $(if $(ACTIVE_ENV),active)
	@touch $@

lint: $(INSTALLED) ## ruff's rules and format on src/ and tests/ (pyproject.toml [tool.ruff]); CI runs it
	$(VENV_BIN)ruff check src tests
	$(VENV_BIN)ruff format --check src tests

format: $(INSTALLED) ## fix what ruff can fix and format src/ and tests/ (then `make lint` says what is left)
	$(VENV_BIN)ruff check --fix src tests
	$(VENV_BIN)ruff format src tests

# Parallel test workers (pytest-xdist), each taking whole files: a file's module fixtures are built once and the
# SLURM tests run one after another. 2 on this 2-core machine (3 measured slower); TEST_WORKERS=0: one process.
# The suite is CPU-bound: OpenMP threads wait passively instead of spinning on the cores the other worker needs
# (the same threads and numbers; 13 % less time measured).
TEST_WORKERS ?= 2
test: $(INSTALLED) ## run the fast test suite (CPU, no network, tiny synthetic data; also passes with a GPU visible)
	OMP_WAIT_POLICY=PASSIVE $(PYTHON) -m pytest -m "not slow and not gpu" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-slow: $(INSTALLED) ## run only the longer checks
	$(PYTHON) -m pytest -m "slow and not gpu" $(PYTEST_ARGS)

test-gpu: $(INSTALLED) ## the CUDA suite (tests/gpu/): every path, sweeps, kills and preemption on a GPU; skipped without one
	$(PYTHON) -m pytest -m gpu $(PYTEST_ARGS)

mutants: $(INSTALLED) ## break one promise at a time in a scratch copy and check its test fails (tests/mutants.py; MUTANTS=text filters)
	$(PYTHON) tests/mutants.py $(if $(MUTANTS),--only "$(MUTANTS)")

train: $(INSTALLED) ## train one network: make train ARGS="model=plain model.depth=56 seed=1"
	$(PYTHON) -m degradation.train $(ARGS)

sweep-cifar: $(INSTALLED) ## the paper grid {plain,resnet} x {20,32,44,56,110}; vars SEEDS DEPTHS ARCHS LAUNCHER JOBS NAME EXTRA DRY=1
	$(PYTHON) -m degradation.train experiment=sweep_cifar $(SWEEP_ARGS)

sweep-resnets: $(INSTALLED) ## {plain,residual} x {ResNet-18,34,50} adapted to CIFAR (same vars; ARCHS=resnet18,resnet50)
	$(PYTHON) -m degradation.train experiment=sweep_imagenet_resnets $(SWEEP_ARGS)

sweep-quick: $(INSTALLED) ## CPU-sized grid that shows the degradation in about 30 minutes on 2 cores
	$(PYTHON) -m degradation.train experiment=sweep_quick $(SWEEP_ARGS)

sweep-cpu: $(INSTALLED) ## the degradation on a CPU: {plain,resnet} x {20,56}, seeds 0,1, 1000 iterations at lr 0.1, fast CPU path
	$(PYTHON) -m degradation.train experiment=sweep_cpu $(SWEEP_ARGS)

sweep-interventions: $(INSTALLED) ## the interventions study: 8 interventions beside plain/ResNet-20/56, 2 seeds, the CPU budget (python -m degradation.study draws it)
	$(PYTHON) -m degradation.train experiment=sweep_interventions $(SWEEP_ARGS)

figures: $(INSTALLED) ## Fig. 6, Fig. 1, Fig. 7 and Table 6 of the latest sweep (or SWEEP=runs/<name>) into figures/<name>/
	$(PYTHON) -m degradation.figures $(if $(SWEEP),--sweep $(SWEEP)) $(FIGURE_ARGS)

analyze: $(INSTALLED) ## why plain nets degrade: every analysis of the latest sweep (or SWEEP=...; ANALYSIS=<name> ANALYSIS_ARGS=...; python -m degradation.analyze --help lists them)
	$(PYTHON) -m degradation.analyze $(ANALYSIS) $(if $(SWEEP),--sweep $(SWEEP)) $(ANALYSIS_ARGS)

bench: $(INSTALLED) ## time harness vs reference vs bare loop on this device into experiments/bench/; vars ARCHS=plain,resnet DEPTHS EXTRA BENCH_ARGS
	$(PYTHON) -m degradation.bench $(if $(ARCHS),--archs $(ARCHS)) $(if $(DEPTHS),--depths $(DEPTHS)) $(BENCH_ARGS) $(EXTRA)

wandb-sync: $(INSTALLED) ## upload runs that W&B logged offline (skips those already synced)
	@if [ -z "$(OFFLINE_WANDB_RUNS)" ]; then echo "no offline W&B runs under runs/"; \
	else $(VENV_BIN)wandb sync $(OFFLINE_WANDB_RUNS); fi

clean-runs: ## delete runs/ (all run directories!)
	rm -rf runs
