# Two entry points (see README): `make lab` opens the notebooks, `make test` runs every test.
# Both build the virtual environment in .venv first (lab: the notebooks' packages; test: adds the
# test tools), and install again when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Stamps: LAB, what the notebooks need (the README says how long and how much); TESTS, the test
# tools on top of it.
LAB    := $(VENV)/.lab
TESTS  := $(VENV)/.tests
# JupyterLab refuses to start as root unless told to: containers often run as root.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test bench bench-engines clean

$(LAB): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[notebooks,litserve,ray]"
	touch $(LAB)

$(TESTS): $(LAB)
	$(PY) -m pip install -q -e ".[test]"
	touch $(TESTS)

lab: $(LAB)
	$(VENV)/bin/jupyter lab $(LAB_ROOT) notebooks/

test: $(TESTS)
	$(PY) -m pytest --solutions

bench: $(LAB)
	$(PY) -m bench

bench-engines: $(LAB)
	$(PY) bench/engines.py

clean:
	rm -rf $(VENV) .pytest_cache
