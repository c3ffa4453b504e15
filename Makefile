# Commands of the template repository. A rendered service has its own Makefile.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where `make render` writes the new service: next to this checkout by default.
OUTPUT_DIR ?= ..

.PHONY: render test lint clean

$(VENV)/.installed: requirements-test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

render: $(VENV)/.installed ## Ask the questions and render a service into OUTPUT_DIR
	$(BIN)/cookiecutter . --output-dir $(OUTPUT_DIR)

test: lint ## Lint, then render matrix, hooks, and the rendered service against real services
	$(BIN)/pytest

lint: $(VENV)/.installed ## Style of the template's own Python (hooks and tests)
	$(BIN)/ruff check hooks tests local_extensions.py
	$(BIN)/ruff format --check hooks tests local_extensions.py

clean: ## Forget the environments and caches made by the commands above
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
