# ml-workflows template: `make demo` bakes and runs the sample, `make test` tests the template.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo bakes into a scratch directory that is removed and recreated on every run.
DEMO_DIR := build/demo
DEMO_SLUG := batch-scoring
BENCH_DIR := build/bench
BENCH_ARGS ?=
# Baked copies install their shipped poetry.lock from Poetry's default source, as a user's machine does.
BAKED_ENV = PATH="$(CURDIR)/$(BIN):$$PATH" POETRY_VIRTUALENVS_IN_PROJECT=true
PYTEST_WORKERS ?= 2

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/.installed: requirements-dev.txt
	@echo "Creating the template's dev environment in $(VENV)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

.PHONY: dev
dev: $(BIN)/.installed ## Create the template's dev environment (.venv)

.PHONY: test
test: $(BIN)/.installed ## Run every template test, slow ones included (bakes, installs and runs projects)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

.PHONY: test-fast
test-fast: $(BIN)/.installed ## Run the fast template tests only
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow"

.PHONY: matrix
matrix: $(BIN)/.installed ## One bake of the pairwise answer matrix, checked whole: ROW=<n> (rows: python tools/answer_matrix.py --table)
	@test -n "$(ROW)" || { echo "usage: make matrix ROW=<n>  (the rows: $(BIN)/python tools/answer_matrix.py --table)"; exit 2; }
	$(BIN)/python -m pytest -m matrix -k "bake-$(ROW)]" tests/test_answer_matrix.py

.PHONY: locks
locks: $(BIN)/.installed ## Lock what is missing or stale in {{cookiecutter.project_slug}}/.locks (keeps every locked version it can)
	$(BIN)/python tools/locks.py write

.PHONY: locks-upgrade
locks-upgrade: $(BIN)/.installed ## Re-resolve every shipped lock to the newest releases (then make test proves them)
	$(BIN)/python tools/locks.py write --upgrade

.PHONY: lint
lint: $(BIN)/.installed ## Ruff on the template's own code and the runtime (baked projects are linted by the tests)
	$(BIN)/ruff check hooks tests tools benchmarks local_extensions.py runtime
	$(BIN)/ruff format --check hooks tests tools benchmarks local_extensions.py runtime

.PHONY: runtime
runtime: $(BIN)/.installed ## After changing runtime/: rebuild the vendored ml-workflows wheel, then re-lock (its hash)
	$(BIN)/python tools/runtime_wheel.py build
	$(BIN)/python tools/locks.py write

.PHONY: bump-dask
bump-dask: $(BIN)/.installed ## Add a Dask release to the supported table: VERSION=... (PYTHONS=3.11,3.12 | CHECK_REGISTRY=1)
	@test -n "$(VERSION)" || { echo "usage: make bump-dask VERSION=<dask release> PYTHONS=3.11,3.12,3.13 (or CHECK_REGISTRY=1)"; exit 2; }
	$(BIN)/python tools/bump_dask.py $(VERSION) $(if $(CHECK_REGISTRY),--check-registry,--pythons $(PYTHONS))

.PHONY: bump-actions
bump-actions: $(BIN)/.installed ## Move a GitHub Action's commit pin in every workflow: ACTION=owner/repo [VERSION=vX.Y.Z] [SHA=...]
	@test -n "$(ACTION)" || { echo "usage: make bump-actions ACTION=actions/checkout [VERSION=v7.0.2] [SHA=<commit>]  (pins now: python tools/bump_actions.py list)"; exit 2; }
	$(BIN)/python tools/bump_actions.py set $(ACTION) $(VERSION) $(if $(SHA),--sha $(SHA))
	$(BIN)/python tools/bump_actions.py check

.PHONY: demo
demo: $(BIN)/.installed ## Bake with defaults into build/demo, install it and run its sample pipeline
	@# The previous demo's Prefect server runs from the environment removed below: stop it first.
	@if [ -x $(DEMO_DIR)/$(DEMO_SLUG)/.venv/bin/python ]; then $(BAKED_ENV) $(MAKE) -s -C $(DEMO_DIR)/$(DEMO_SLUG) server-stop; fi
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(BIN)/cookiecutter --no-input --output-dir $(DEMO_DIR) .
	$(BAKED_ENV) $(MAKE) -C $(DEMO_DIR)/$(DEMO_SLUG) install
	$(BAKED_ENV) $(MAKE) -C $(DEMO_DIR)/$(DEMO_SLUG) run
	@echo "Demo project: $(DEMO_DIR)/$(DEMO_SLUG)  (cd there and try: make help; make server-stop stops its Prefect server)"

.PHONY: bench
bench: $(BIN)/.installed ## Benchmarks: bake vs a bare bake, then the pipeline benchmarks in a bake in build/bench (BENCH_ARGS=...)
	$(BIN)/python benchmarks/bench_bake.py
	rm -rf $(BENCH_DIR) && mkdir -p $(BENCH_DIR)
	$(BIN)/cookiecutter --no-input --output-dir $(BENCH_DIR) .
	$(BAKED_ENV) $(MAKE) -C $(BENCH_DIR)/$(DEMO_SLUG) install
	cd $(BENCH_DIR)/$(DEMO_SLUG) && $(BAKED_ENV) poetry run python -m pip install --quiet psutil
	cd $(BENCH_DIR)/$(DEMO_SLUG) && $(BAKED_ENV) poetry run python $(CURDIR)/benchmarks/bench_pipeline.py \
		--json $(CURDIR)/$(BENCH_DIR)/pipeline.json $(BENCH_ARGS)

.PHONY: clean
clean: ## Remove the dev environment and scratch bakes
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
