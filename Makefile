# The two commands: `make demo` and `make test`. Each builds its own venv (.venv) on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: venv lint types unit test demo bench clean test-matrix test-af31 test-af32 test-af33-py310 test-af33-py313 \
        check-wheel

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]' \
	  || $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(VENV)/.installed-bench: $(STAMP)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev,bench]' \
	  || $(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest

# Lint, types and the whole suite: what CI runs (.ci/run).
test: lint types unit

# The version matrix: the whole suite (not the browser test) in its own venv per cell (.venv-af31, ...),
# built from scratch when missing: Airflow 3.1.8 and 3.2.2 on Python 3.11, Airflow 3.3.2 on Python 3.10 and
# 3.13 (interpreters from pyenv). One cell alone: `make test-af31`. See scripts/matrix.sh.
MATRIX_CELLS := af31 af32 af33-py310 af33-py313

test-matrix:
	bash scripts/matrix.sh $(MATRIX_CELLS)

$(MATRIX_CELLS:%=test-%):
	bash scripts/matrix.sh $(@:test-%=%)

# Installed from a wheel, as users get it: build + twine check, install into a fresh venv with Airflow
# 3.3.2, `airflow providers list`, the emulator, one example DAG. See scripts/check_wheel.sh.
check-wheel:
	bash scripts/check_wheel.sh $(BIN)/python

# Start the emulator, run the gating example DAG in real Airflow against it, print what happened.
demo: venv
	$(BIN)/python scripts/demo.py

# Side-by-side measurements; not part of `make test`.
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(MATRIX_CELLS:%=.venv-%) .mypy_cache .ruff_cache .pytest_cache
