# One command to set up and run, one to set up and test. See README.md.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# This machine kind serves a CPU build of torch 2.13.0 from its local disk. Elsewhere use the
# CPU wheel index, e.g.:
#   make setup TORCH_INSTALL="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_INSTALL ?= torch==2.13.0
PG_TEST_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: setup run test test-pg lint format bench load fuzz browser clean

setup: $(VENV)/.installed

# Quiet pip, one line per step: on a fresh machine this takes minutes, most of it torch. Once
# done it is skipped until pyproject.toml changes. torch comes first, so that
# sentence-transformers does not pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	@echo "setup: creating the virtualenv $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "setup: installing torch ($(TORCH_INSTALL)), the longest step"
	@$(BIN)/python -m pip install --quiet $(TORCH_INSTALL)
	@echo "setup: installing the project and its dev tools (pip install -e '.[local,dev]')"
	@$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	@touch $@
	@echo "setup: done; the commands are in $(BIN) (chatbot, pytest, ...)"

# HOST and PORT (default 127.0.0.1 and 8000) choose the address: make run PORT=9000.
# `exec`: the server is make's own child, so Ctrl-C or SIGTERM ends it cleanly, with no
# `make: *** [run]` line.
run: setup
	@echo "run: $(BIN)/chatbot serve (migrates the database, loads the embedding model, serves)"
	@exec $(BIN)/chatbot serve

test: setup
	$(BIN)/pytest

test-pg: setup
	# Only the tests that reach the database (tests/conftest.py, DATABASE_FIXTURES).
	TEST_DATABASE_URL=$(PG_TEST_URL) TEST_DATABASE_ONLY=1 $(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m bench.run

# Needs Debian's nginx and wrk; bounded to about a minute, 127.0.0.1 only.
load: setup
	bash bench/load/run.sh

# schemathesis against our OpenAPI schema (in its own .venv-fuzz), 127.0.0.1 only.
fuzz: setup
	bash bench/fuzz/run.sh

# /docs under a path prefix through nginx, and a cross-origin front end, in headless Chromium
# (Debian's chromium, chromium-driver and nginx; the tests skip loudly without them).
browser: setup
	$(BIN)/pytest tests/browser -v

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
