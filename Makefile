# klink-sync: the two commands a new user runs are `make demo` and `make test`.
# Both install what they need (apt packages, dockerd, images, the venv) first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
KLINK_SYNC := $(VENV)/bin/klink-sync
DEMO_DIR ?= $(CURDIR)/demo
PYTEST_ARGS ?=
# for admins: the installed command (make install), else this checkout's
CONFIG ?= /etc/klink-sync/config.yml
SNAPSHOT ?= latest
ARGS ?=
PREFIX ?= /opt/klink-sync
BINDIR ?= /usr/local/bin
UNIT_DIR ?= /etc/systemd/system
ON_CALENDAR ?= daily
CMD ?= $(if $(wildcard $(BINDIR)/klink-sync),$(BINDIR)/klink-sync,$(KLINK_SYNC))

.PHONY: help deps images demo test unit integration e2e lint clean
.PHONY: backup restore verify install install-timer

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

deps: ## install apt packages, start dockerd, Compose v2, base image, venv
	bash scripts/install-deps.sh

images: deps ## build the sample stack's images (local, no registry)
	bash scripts/sample-stack/build.sh

demo: images ## back up the bundled sample stack while it writes, then check the snapshot
	DEMO_DIR=$(DEMO_DIR) KLINK_SYNC=$(KLINK_SYNC) PY=$(PY) bash scripts/demo.sh

test: images lint ## every test: unit, integration (real rsync), e2e (real Docker, Compose v2 and v1); two workers
	$(PY) -m pytest -ra -n 2 --dist loadgroup $(PYTEST_ARGS) tests
	KLINK_E2E_COMPOSE=docker-compose $(PY) -m pytest -ra tests/e2e/test_hot_cold_e2e.py

unit: ## pure modules only (no install step)
	$(PY) -m pytest -q tests/unit

integration: ## real rsync, stand-in compose (no Docker)
	$(PY) -m pytest -q tests/integration

e2e: images ## real Docker, real Compose, the sample stack
	$(PY) -m pytest -ra tests/e2e

lint: deps ## ruff; the package's shape (scripts/shape.py); shellcheck on klink_sync's *.sh
	$(VENV)/bin/ruff check klink_sync tests scripts
	$(PY) scripts/shape.py klink_sync
	find klink_sync -name '*.sh' -print0 | xargs -0 -r shellcheck

backup: ## hot-cold backup as configured (CONFIG=/etc/klink-sync/config.yml)
	$(CMD) hot-cold --config $(CONFIG) $(ARGS)

restore: ## put a snapshot back (SNAPSHOT=latest; ARGS=--dry-run shows what it would do)
	$(CMD) restore $(SNAPSHOT) --config $(CONFIG) $(ARGS)

verify: ## re-read the latest snapshot against its checksums (ARGS=--all, --database)
	$(CMD) verify --config $(CONFIG) $(ARGS)

install: ## venv in PREFIX=/opt/klink-sync, link in BINDIR=/usr/local/bin, sample CONFIG
	python3 -m venv $(PREFIX)
	$(PREFIX)/bin/pip install -q --upgrade pip
	$(PREFIX)/bin/pip install -q "$(CURDIR)"
	install -d $(BINDIR)
	ln -sfn $(PREFIX)/bin/klink-sync $(BINDIR)/klink-sync
	@install -d -m 0700 "$(dir $(CONFIG))"
	@if [ -e "$(CONFIG)" ]; then $(BINDIR)/klink-sync config check "$(CONFIG)"; \
	else (umask 077 && $(BINDIR)/klink-sync config sample >"$(CONFIG)") && \
	     echo "wrote $(CONFIG): set folder and dest in it"; fi
	@echo "installed $(BINDIR)/klink-sync -> $(PREFIX)/bin/klink-sync"

install-timer: ## systemd service + timer (ON_CALENDAR=daily), enabled
	@[ -x $(BINDIR)/klink-sync ] || { echo "no $(BINDIR)/klink-sync: run make install first" >&2; exit 1; }
	$(BINDIR)/klink-sync timer install --config "$(CONFIG)" --on-calendar "$(ON_CALENDAR)" --unit-dir "$(UNIT_DIR)"
	@if [ -d /run/systemd/system ]; then systemctl daemon-reload && systemctl enable --now klink-sync.timer \
	  && systemctl list-timers klink-sync.timer --no-pager; \
	else echo "systemd is not running here: enable the timer where it is"; fi

.PHONY: bench
BENCH_ARGS ?=
bench: images ## downtime benchmark, writes docs/benchmarks.md + docs/downtime.png (BENCH_ARGS=--quick: smoke size)
	@$(PY) -c 'import matplotlib, pymysql' 2>/dev/null || $(VENV)/bin/pip install -q -e '.[test,bench]'
	$(PY) -m scripts.bench $(BENCH_ARGS)

clean: ## remove the venv and the demo folder (stops the demo stack)
	-[ -d $(DEMO_DIR)/k-link ] && cd $(DEMO_DIR)/k-link && docker compose down
	rm -rf $(VENV) $(DEMO_DIR)
