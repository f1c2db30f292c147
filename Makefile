# chatsys developer commands. `make run` and `make test` are the README's two
# commands: each creates .venv and installs the locked dependencies on first use.
.DEFAULT_GOAL := check
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TS_SDK := tests/sdk/ts
TS_STAMP := $(TS_SDK)/node_modules/.installed

.PHONY: check install run test test-unit test-integration test-e2e chaos fuzz lint lint-fast fmt bench lock audit sdk sdk-ts clean

check: lint test ## lint + types + tests (the default goal)

$(STAMP): requirements/dev.lock requirements/bootstrap.txt pyproject.toml
	@echo "==> creating $(VENV) and installing the locked dependencies (first run: about a minute)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/bootstrap.txt
	@# Bytecode compiled now: where PYTHONDONTWRITEBYTECODE is set no process writes it,
	@# and each one would compile LiteLLM from source again (about 4 s per worker start).
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes --compile-bytecode -r requirements/dev.lock
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	@$(BIN)/python -m compileall -q src >/dev/null
	@touch $(STAMP)

install: $(STAMP) ## create .venv with every locked dependency

run: $(STAMP) ## the whole service: embedded Postgres + Redis (unless URLs are set), migrations, API, worker
	@exec $(BIN)/chatsys dev

test: $(STAMP) ## the whole test suite on real Postgres and Redis
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration

test-e2e: $(STAMP)
	$(BIN)/pytest tests/e2e

chaos: $(STAMP) ## the chaos suite on real processes (kills, Redis/Postgres outages, webhook backlog, secret grep); not part of `make test`
	$(BIN)/pytest tests/chaos $(CHAOS_ARGS)

fuzz: $(STAMP) ## schemathesis against a live chatsys (every check, stateful phase; ~3 min); FUZZ_ARGS="--max-examples 1000" for longer
	$(BIN)/python -m tests.tools.fuzz $(FUZZ_ARGS)

lint: lint-fast ## lint-fast, then migration drift and the dependency audit
	$(BIN)/python -m tests.tools.alembic_check
	$(MAKE) --no-print-directory audit

lint-fast: $(STAMP) ## ruff, format check, mypy strict, import contracts (the pre-commit hook)
	$(BIN)/ruff check src tests bench alembic
	$(BIN)/ruff format --check src tests bench alembic
	$(BIN)/mypy
	$(BIN)/lint-imports

audit: $(STAMP) ## known-vulnerability audit of the locked dependencies
	$(BIN)/python -m tests.tools.audit

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench alembic
	$(BIN)/ruff format src tests bench alembic

bench: $(STAMP) ## benchmark scenarios (ratios against a baseline measured in the same run)
	$(BIN)/python -m bench

sdk: $(STAMP) $(TS_STAMP) ## the Python and TypeScript clients from `chatsys openapi` into build/sdk, type-checked
	$(BIN)/python -m tests.sdk.generate build/sdk

sdk-ts: $(STAMP) $(TS_STAMP) ## the TypeScript client only (npm ci, openapi-typescript, tsc --strict)
	$(BIN)/python -m tests.sdk.generate --typescript build/sdk

$(TS_STAMP): $(TS_SDK)/package-lock.json $(TS_SDK)/package.json
	cd $(TS_SDK) && npm ci
	@touch $(TS_STAMP)

lock: ## re-resolve requirements/*.lock from pyproject.toml (needs uv in .venv)
	$(BIN)/uv pip compile pyproject.toml --extra embedded --extra dev --generate-hashes --universal --python-version 3.11 -q -o requirements/dev.lock
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --universal --python-version 3.11 -q -o requirements/prod.lock

clean: ## remove the virtualenv and caches (keeps .chatsys/ data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build/sdk $(TS_SDK)/node_modules $(TS_SDK)/generated $(TS_SDK)/dist
