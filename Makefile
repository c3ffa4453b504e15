# Commands of the template repository. A rendered service has its own Makefile.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where `make render` writes the new service: next to this checkout by default.
OUTPUT_DIR ?= ..

# CI also tests with the oldest cookiecutter the README claims and the newest:
# `make test-render COOKIECUTTER_VERSION=2.2.0` installs that one over the pin,
# which the next `make` puts back.
COOKIECUTTER_VERSION ?=
# Options of benchmarks/compare_designs.py, e.g. BENCH_ARGS="--rounds 5".
BENCH_ARGS ?=

.PHONY: install render test test-render test-service test-boot lint clean bench

$(VENV)/.installed: requirements-test.txt tests/kubernetes/package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	npm ci --silent --no-audit --no-fund --prefix tests/kubernetes
	touch $@

install: $(VENV)/.installed ## Install the suite's tools into VENV (the other targets do it too)

render: $(VENV)/.installed ## Ask the questions and render a service into OUTPUT_DIR
	$(BIN)/cookiecutter . --output-dir $(OUTPUT_DIR)

test: lint ## Lint, then render matrix, hooks, and the rendered service against real services
	$(BIN)/pytest

# The same suite in three parts, for CI's parallel jobs.
test-render: $(VENV)/.installed ## Renders, hooks, answers, workflows, containers' and monitoring files
ifneq ($(COOKIECUTTER_VERSION),)
	$(BIN)/python -m pip install --quiet "cookiecutter==$(COOKIECUTTER_VERSION)"
	rm $(VENV)/.installed
endif
	$(BIN)/pytest -m "not service and not boot"

test-service: $(VENV)/.installed ## The rendered service's make targets against real services
	$(BIN)/pytest -m service

test-boot: $(VENV)/.installed ## The compose stacks booted in Docker, the Kubernetes pods in podman
	$(BIN)/pytest -m boot

# A rendered service with its environment (`make install` in it); PREVIOUS, a
# render of another commit of this template, to compare with in the same run.
RENDER ?= ../my_service
PREVIOUS ?=
bench: ## RENDER's API against the original design, FastAPI + taskiq (and PREVIOUS), in one run; where the CPU goes
	$(RENDER)/.venv/bin/python -m pip install --quiet -r benchmarks/requirements.txt
	$(RENDER)/.venv/bin/python benchmarks/compare_designs.py \
		--render $(RENDER) --profile \
		$(if $(PREVIOUS),--previous $(PREVIOUS) --previous-python $(PREVIOUS)/.venv/bin/python) \
		$(BENCH_ARGS)

lint: $(VENV)/.installed ## Style of the template's own Python (hooks and tests)
	$(BIN)/ruff check hooks tests benchmarks fastapi_celery_filters.py
	$(BIN)/ruff format --check hooks tests benchmarks fastapi_celery_filters.py

clean: ## Forget the environments and caches made by the commands above
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
