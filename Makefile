# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: compile demo test lint bench clean

$(BIN)/agentqueue: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Every worker and command the demo and the suite start imports the package afresh: compiled
# once here, it is not compiled again in each process (where PYTHONDONTWRITEBYTECODE is set,
# nothing else would write the bytecode).
compile: $(BIN)/agentqueue
	$(BIN)/python -m compileall -q agentqueue

demo: compile  ## run the sample workload (starts a private Redis if none answers)
	$(BIN)/agentqueue demo

test: compile  ## lint, type-check, check the layering and run the whole suite
	$(BIN)/ruff check agentqueue tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

bench: compile
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
