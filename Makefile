# Two entry points (see README): `make lab` opens the notebooks, `make test` runs every test.
# Both build the virtual environment in .venv first, and rebuild it when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# JupyterLab refuses to start as root unless told to: containers often run as root.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test bench bench-engines clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(LAB_ROOT) notebooks/

test: $(STAMP)
	$(PY) -m pytest --solutions

bench: $(STAMP)
	$(PY) -m bench

bench-engines: $(STAMP)
	$(PY) bench/engines.py

clean:
	rm -rf $(VENV) .pytest_cache
