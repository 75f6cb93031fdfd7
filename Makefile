# Two commands do all set-up on a fresh clone (Python 3.10+, pip and make):
#   make train   create .venv, install nn, fetch MNIST, train the seed recipe
#   make test    install the test extras (TensorFlow included) and run every test
#   make bench   install the benchmark peers and run the headline speed benchmarks
#                (quiet, beside one busy process, time to 97%), JSON into $(BENCH_OUT)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/seed
BENCH_OUT ?= runs/bench
PEERS ?= nn-numba,nn-numba-1t,keras,torch,jax

.PHONY: train test bench clean

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

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@touch $@ $(VENV)/.installed

# torch is not installed here (see pyproject's bench extra); without it its rows are skipped.
bench: $(VENV)/.installed-bench
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/train_speed.py --frameworks $(PEERS) --batch-sizes 32,128,1024 \
		--epochs 4 --json $(BENCH_OUT)/train_speed.json
	$(BIN)/python benchmarks/train_speed.py --busy --frameworks nn-numba,nn-numba-1t,jax \
		--batch-sizes 32 --epochs 4 --json $(BENCH_OUT)/train_speed-busy.json
	$(BIN)/python benchmarks/train_speed.py --time-to-accuracy 0.97 --frameworks $(PEERS) \
		--batch-sizes 32 --epochs 10 --json $(BENCH_OUT)/time_to_accuracy.json

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
