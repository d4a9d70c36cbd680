# Strongroom: `make run` opens the appliance on a bundled demo vault; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint bench demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: setup
	$(PY) -m vault.demo --open

demo: setup
	$(PY) -m vault.demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff format --check vault tui tests bench
	$(VENV)/bin/ruff check vault tui tests bench

bench: setup
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-vault .pytest_cache .hypothesis
