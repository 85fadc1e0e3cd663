# Workbench: two commands on a fresh machine.
#   make reproduce   set up .venv, run every notebook at the cpu preset, write figures/ and outputs/REPORT.md
#                    (NOTEBOOKS=01,09 runs a subset; PRESET=smoke the CI preset)
#   make test        set up .venv, run the test suite (slow tests excluded; `make test-slow` runs them)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= cpu
NOTEBOOKS ?=
comma := ,
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: setup test test-slow reproduce bench lab clean-outputs

setup: $(STAMP)

# torch first, pinned to the CPU build this machine keeps on disk, only where no torch is installed:
# pyproject.toml asks for a range, so a user's own (e.g. CUDA) build is kept.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all]'
	@touch $@

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

reproduce: $(STAMP)
	$(PY) -m workbench.run --preset $(PRESET) $(subst $(comma), ,$(NOTEBOOKS))

bench: $(STAMP)
	@mkdir -p outputs/bench
	@set -e; for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f; done

# Every notebook names the kernel `python3` ("Python 3 (workbench)"); installing .venv's kernel under that name
# in .venv's own prefix makes .venv's jupyter pick it. Root (containers) needs --allow-root.
lab: $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (workbench)"
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)

clean-outputs:
	rm -rf outputs
