# Two commands do all set-up on a fresh clone (Python 3.10+, pip and make):
#   make train   create .venv, install nn, fetch MNIST, train the seed recipe
#   make test    install the test extras (TensorFlow included) and run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/seed

.PHONY: train test clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else \
		"nn needs Python 3.10 or newer; run e.g. make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

train: $(VENV)/.installed
	$(BIN)/python -m nn train --out $(OUT)

test: $(VENV)/.installed-test
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
