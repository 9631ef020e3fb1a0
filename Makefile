# Every target creates the virtual environment it needs; nothing has to be installed by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit chaos bench bench-quick clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,emulator,postgres,metrics]'
	touch $(STAMP)

demo: venv
	$(BIN)/asyncjobs demo

# benchmarks/ is linted once it exists (a fresh clone may not have it yet).
LINT_PATHS := asyncjobs tests $(wildcard benchmarks)

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: venv
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

unit: venv
	$(BIN)/pytest tests/unit

chaos: venv
	$(BIN)/python -m tests.chaos --kills 50 --jobs 200
	$(BIN)/python -m tests.chaos_workers --kills 30 --jobs 150

bench: venv
	$(BIN)/python -m benchmarks

bench-quick: venv
	$(BIN)/python -m benchmarks --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
