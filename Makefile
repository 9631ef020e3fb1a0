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
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/asyncjobs demo

lint: venv
	$(BIN)/ruff check asyncjobs tests benchmarks
	$(BIN)/ruff format --check asyncjobs tests benchmarks

typecheck: venv
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

unit: venv
	$(BIN)/pytest tests/unit

chaos: venv
	$(BIN)/python -m tests.chaos --kills 50 --jobs 200

bench: venv
	$(BIN)/python -m benchmarks

bench-quick: venv
	$(BIN)/python -m benchmarks --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
