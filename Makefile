# Two commands on a fresh machine: `make run` (the platform) and `make test` (every check).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3

# The test run uses its own Redis database, so a running dev stack is never flushed by the tests.
TEST_ENV := REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} \
	DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/courier} \
	PASSWORD_HASHERS=django.contrib.auth.hashers.MD5PasswordHasher

.PHONY: run test lint bench-orders bench-ingest bench-dispatch bench-tracking install

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) scripts/run.py

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	@if command -v docker-compose >/dev/null; then docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid"; \
	else echo "docker-compose not installed: compose file not validated"; fi

test: $(VENV)/.installed
	$(TEST_ENV) PYTHON=$(PY) scripts/ensure-services.sh
	$(MAKE) lint
	$(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run
	$(TEST_ENV) $(PY) -m pytest -q $(PYTEST_ARGS)
