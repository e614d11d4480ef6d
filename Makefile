# klink-sync: the two commands a new user runs are `make demo` and `make test`.
# Both install what they need (apt packages, dockerd, images, the venv) first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
KLINK_SYNC := $(VENV)/bin/klink-sync
DEMO_DIR ?= $(CURDIR)/demo
PYTEST_ARGS ?=

.PHONY: help deps images demo test unit integration e2e lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## install apt packages, start dockerd, Compose v2, base image, venv
	bash scripts/install-deps.sh

images: deps ## build the sample stack's images (local, no registry)
	bash scripts/sample-stack/build.sh

demo: images ## back up the bundled sample stack while it writes, then check the snapshot
	DEMO_DIR=$(DEMO_DIR) KLINK_SYNC=$(KLINK_SYNC) PY=$(PY) bash scripts/demo.sh

test: images lint ## every test: unit, integration (real rsync), e2e (real Docker)
	$(PY) -m pytest -ra $(PYTEST_ARGS) tests

unit: ## pure modules only (no install step)
	$(PY) -m pytest -q tests/unit

integration: ## real rsync, stand-in compose (no Docker)
	$(PY) -m pytest -q tests/integration

e2e: images ## real Docker, real Compose, the sample stack
	$(PY) -m pytest -ra tests/e2e

lint: deps ## ruff
	$(VENV)/bin/ruff check klink_sync tests scripts

clean: ## remove the venv and the demo folder (stops the demo stack)
	-[ -d $(DEMO_DIR)/k-link ] && cd $(DEMO_DIR)/k-link && docker compose down
	rm -rf $(VENV) $(DEMO_DIR)
