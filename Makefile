# Two commands do everything on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
PORT ?= 5000
LOCALSTRIPE_PORT ?= 8420
DEV_LOG ?= instance/dev.log

BENCH_HARNESS ?= ../shared/bench
BENCH_PRODUCTS ?= 1000000
# The harness's medians over rounds: one noisy 10 s window does not decide a ratio.
BENCH_ROUNDS ?= 3

.PHONY: run dev test lint format migrate bench clean client

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

## run: install, upgrade the local SQLite database, serve on $(PORT) (sign-in codes appear in this log)
run: $(VENV)/.runtime
	$(FLASK) db upgrade
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

## dev: like run, plus localstripe standing in for Stripe on $(LOCALSTRIPE_PORT), its webhook wired to the app; the log (emails too) also in $(DEV_LOG)
dev: $(VENV)/.dev
	$(FLASK) db upgrade
	PORT=$(PORT) LOCALSTRIPE_PORT=$(LOCALSTRIPE_PORT) DEV_LOG=$(DEV_LOG) bin/dev

## test: install, run the whole suite (Postgres when TEST_DATABASE_URL is set, else SQLite)
test: $(VENV)/.dev
	$(BIN)/python -m pytest

## bench: the shared harness (catalog: project vs raw SQL vs DRF), filter latencies, orders, webhooks, reports, mixed load, the metrics and tracing hooks on and off, instructions per catalog page
bench: $(VENV)/.runtime
	CATALOG_RATE_LIMIT_PER_IP="1000000000 per minute" \
	  $(BENCH_HARNESS)/run.sh --project . --products $(BENCH_PRODUCTS) --rounds $(BENCH_ROUNDS) --keep-pg
	$(BIN)/python -m bench.catalog_filters --harness $(BENCH_HARNESS) \
	  && $(BIN)/python -m bench.orders --harness $(BENCH_HARNESS) \
	  && $(BIN)/python -m bench.webhooks --harness $(BENCH_HARNESS) \
	  && $(BIN)/python -m bench.report --harness $(BENCH_HARNESS) \
	  && $(BIN)/python -m bench.mixed --harness $(BENCH_HARNESS) \
	  && $(BIN)/python -m bench.observability --harness $(BENCH_HARNESS) \
	  && $(BIN)/python -m bench.instructions --harness $(BENCH_HARNESS); \
	  status=$$?; $(BENCH_HARNESS)/pg.sh stop; exit $$status

## client: write openapi.json from the code, then the TypeScript client's types from it, and type-check
client: $(VENV)/.runtime clients/typescript/node_modules/.package-lock.json
	$(FLASK) openapi write openapi.json
	cd clients/typescript && npm run --silent generate && npm run --silent check

clients/typescript/node_modules/.package-lock.json: clients/typescript/package-lock.json
	cd clients/typescript && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

## lint: ruff lint and format check
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## migrate: write a migration for model changes (MESSAGE="what changed")
migrate: $(VENV)/.runtime
	$(FLASK) db migrate -m "$(MESSAGE)"

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache clients/typescript/node_modules
