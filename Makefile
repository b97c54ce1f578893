# Two commands matter: `make demo` and `make test`. Everything else is a step they call.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PXVENV := .phoenix-venv
PY := $(VENV)/bin/python
PHOENIX_VERSION := 20.26.1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test bench load lint migrate venv phoenix-venv system-deps demo-stop secret env clean \
	screenshots

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev,demo]"
	touch $@

# Phoenix pins strawberry-graphql, pandas and numpy, so it lives apart from the dashboard.
phoenix-venv: $(PXVENV)/.installed
$(PXVENV)/.installed:
	$(PYTHON) -m venv $(PXVENV)
	$(PXVENV)/bin/python -m pip install --quiet "arize-phoenix[pg]==$(PHOENIX_VERSION)"
	touch $@

system-deps:
	@scripts/system-deps.sh

# Our database, then the facts store (STORE_URL); both are safe to run again.
migrate: venv
	$(VENV)/bin/alembic upgrade head
	$(PY) -m store.migrate

# DEV_MODE lets the demo run with the built-in SECRET_KEY; the app refuses that key without it.
demo: venv phoenix-venv migrate
	DEV_MODE=true $(PY) -m devtools.demo

# The README's screenshots, light and dark (docs/screenshots/), at 1440x900: the full demo in a
# scratch Phoenix and a scratch dashboard under .tmp, photographed in headless Chromium.
screenshots: venv phoenix-venv migrate
	DEV_MODE=true $(PY) -m devtools.screenshots

demo-stop: venv
	$(PY) -m devtools.phoenix stop

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# PostgreSQL and Redis are throwaway servers that live only as long as the run. The modules run
# on TEST_WORKERS pytest-xdist workers, a module to a worker (its fixtures built once): much of
# the suite waits on Phoenix, browsers and servers rather than on the CPU.
TEST_WORKERS ?= 2
test: venv phoenix-venv system-deps lint
	$(PY) -m devtools.services run --dir .tmp/services -- $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# Seeds 1k, 10k and 50k LLM spans into bench/data/ once (about 17 min), then reuses them.
bench: venv phoenix-venv system-deps
	$(PY) -m devtools.services run --dir .tmp/bench-services -- $(PY) -m bench.run

# 50 simulated analysts against gunicorn on the cached bench data: a warm-up and three runs of
# 45 s, RSS after each; exits non-zero on any error or memory growth. Not part of `make test`.
load: venv phoenix-venv system-deps
	$(PY) -m devtools.services run --dir .tmp/load-services -- $(PY) -m load.run

secret:
	@$(PYTHON) -c "import secrets; print(secrets.token_urlsafe(48))"

# .env for docker-compose.yml: .env.example with fresh secrets. Never overwrites an existing .env.
env:
	@$(PYTHON) scripts/make_env.py

clean:
	rm -rf .tmp .pytest_cache .mypy_cache .ruff_cache
