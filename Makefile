# The two commands a newcomer needs: `make lab` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lab test lint install clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## start the local lab, run a short comparison of every pool and print the table
lab: $(STAMP)
	$(BIN)/poollab bench --quick

## lint, type-check and run the whole test suite on a real Redis
test: $(STAMP)
	$(BIN)/ruff check poollab tests loadtest
	$(BIN)/ruff format --check poollab tests loadtest
	$(BIN)/mypy poollab loadtest
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check poollab tests
	$(BIN)/mypy poollab

clean:
	rm -rf $(VENV) .poollab .pytest_cache .mypy_cache .ruff_cache
