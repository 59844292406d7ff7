# Two commands on a fresh machine: `make run` (the platform) and `make test` (every check).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: run test fuzz lint bench-orders bench-ingest bench-dispatch bench-tracking bench-reads chaos install

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) scripts/run.py

# Benchmarks use their own database and Redis index (BENCH_DATABASE_URL / BENCH_REDIS_URL) and need `wrk`.
BENCH_ENV := BENCH_DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/courier_bench} \
	BENCH_REDIS_URL=$${BENCH_REDIS_URL:-redis://127.0.0.1:6379/10}

bench-orders: $(VENV)/.installed
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/courier_bench} \
		REDIS_URL=$${BENCH_REDIS_URL:-redis://127.0.0.1:6379/10} PYTHON=$(PY) scripts/ensure-services.sh
	@command -v wrk >/dev/null || { echo "bench-orders needs wrk: apt-get install -y wrk (or brew install wrk)"; exit 1; }
	$(BENCH_ENV) $(PY) bench/orders.py $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	@if command -v docker-compose >/dev/null; then docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid"; \
	else echo "docker-compose not installed: compose file not validated"; fi

# TEST_DATABASE_URL / TEST_REDIS_URL, else the machine's own servers, else embedded ones: see scripts/test.py.
test: $(VENV)/.installed
	$(PY) scripts/test.py $(PYTEST_ARGS)

# Schema-driven fuzzing alone, with more examples than the bounded run inside `make test` (config/tests/test_fuzz.py).
# FUZZ_SEED=n repeats a run's examples.
fuzz: $(VENV)/.installed
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-40} FUZZ_BUDGET_SECONDS=$${FUZZ_BUDGET_SECONDS:-600} \
		$(PY) scripts/test.py -s -m fuzz $(PYTEST_ARGS)

# GPS ingest over HTTP against the Procfile's web process (batches of 1 and of 20); see BENCHMARKS.md.
bench-ingest: $(VENV)/.installed
	$(PY) bench/ingest.py

# Time from `paid` to `assigned` for a burst of orders with 500 available drivers; see BENCHMARKS.md.
bench-dispatch: $(VENV)/.installed
	$(PY) bench/dispatch.py

# Live tracking: WebSocket fan-out latency (driver POST -> client receipt) and connections per web process.
bench-tracking: $(VENV)/.installed
	$(PY) bench/tracking.py $(BENCH_ARGS)

# CPU and queries of reading one order (its customer, its driver) beside GET /api/v1/me, in-process.
bench-reads: $(VENV)/.installed
	$(PY) bench/order_reads.py $(BENCH_ARGS)

# Fault injection under load with its own throwaway PostgreSQL and Redis (never the machine's); see RELIABILITY.md.
chaos: $(VENV)/.installed
	$(PY) bench/chaos.py $(CHAOS_ARGS)
