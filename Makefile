# The README's commands. `make demo` and `make test` install what they need first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU torch from the local wheel first, so no dependency pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/finsent demo

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow" -q

test-all: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check monitor pipelines dashboards models tests
	$(BIN)/ruff format --check monitor pipelines dashboards models tests
	$(BIN)/mypy monitor pipelines models dashboards
	# Architecture contracts: [tool.importlinter] in pyproject.toml; the map is docs/architecture.md.
	$(BIN)/lint-imports

bench: install
	HF_HUB_OFFLINE=1 $(BIN)/finsent bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
