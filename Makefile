# LLMFS: the two commands a newcomer needs are `make lab` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SERIES := 01CB-basics 02PT-pretraining 03FT-finetuning 04RAG 05Agent 06Inference
# Every later install is held to the local CPU torch wheel (any other spec pulls a CUDA build).
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1
CPP_SOURCES := $(shell find cpp_kernels -name '*.cpp' -o -name '*.h' -o -name 'CMakeLists.txt')
VENDOR := build/vendor
# reveal.js slides that work offline: these pinned npm packages are copied into $(VENDOR).
NPM_VENDOR := reveal.js@4.0.2 requirejs@2.3.7 jquery@2.2.4 mathjax@2.7.7
PYTEST := $(PY) -m pytest -p no:langsmith_plugin
# pip's noise about local package folders that some machines configure but do not have
QUIET_PIP := 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
# Jupyter refuses to run as root unless told (containers, CI).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help setup lab test unit notebooks assets install slides bench bench-train bench-mlp sanitize clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.requirements: requirements.txt constraints.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt $(QUIET_PIP)
	@touch $@

$(VENV)/.llmfs: $(VENV)/.requirements pyproject.toml $(CPP_SOURCES)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . $(QUIET_PIP)
	$(PY) -m ipykernel install --sys-prefix --name llmfs --display-name "Python 3 (llmfs)" > /dev/null
	@touch $@

install: $(VENV)/.llmfs  ## create .venv, install the pins and the package (builds the C++ module)

assets: $(VENV)/.llmfs  ## fetch and verify every dataset / weight file into the cache
	$(PY) -m llmfs.assets fetch --all

$(VENDOR)/.stamp:
	@mkdir -p $(VENDOR)
	cd $(VENDOR) && for p in $(NPM_VENDOR); do \
	  name=$${p%@*}; tgz=$$(npm pack --silent $$p 2>/dev/null | tail -1) && \
	  rm -rf $$name && mkdir -p $$name && tar -xzf $$tgz -C $$name --strip-components=1 && rm -f $$tgz \
	  || { echo "npm could not fetch $$p: is the npm registry reachable?"; exit 1; }; done
	@touch $@

setup: install assets $(VENDOR)/.stamp  ## everything, once: venv, package, assets, slide scripts

lab: setup  ## set up, then open the course in JupyterLab
	$(PY) -m jupyter lab $(ALLOW_ROOT) $(LAB_ARGS)

# The tests run with the network cut off (tests/offline.sh), proving that nothing downloads after setup.
# One BLAS/torch thread per notebook: FAST sizes are small, and two threads fighting over 2 cores were
# measured 2-10x slower on a busy machine.
test: setup  ## set up, then run the unit tests and every notebook (FAST mode), offline
	@OMP_NUM_THREADS=1 LLMFS_FAST=1 sh tests/offline.sh $(PYTEST) -q tests $(SERIES) assets/template.ipynb \
	  --nbval --nbval-current-env --nbval-cell-timeout=600 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi; exit $$rc

unit: install  ## only the unit tests
	LLMFS_FAST=1 $(PYTEST) -q tests $(PYTEST_ARGS)

notebooks: setup  ## only the notebooks (FAST mode)
	OMP_NUM_THREADS=1 LLMFS_FAST=1 $(PYTEST) -q $(SERIES) --nbval --nbval-current-env --nbval-cell-timeout=600 $(PYTEST_ARGS)

slides: setup  ## execute every notebook (FAST) and render offline reveal.js slides into build/slides
	LLMFS_FAST=1 $(PY) -m llmfs.slides $(SERIES) --out build/slides --vendor $(VENDOR)

bench: install  ## print each kernel's speed and its ratio to a baseline measured in the same run
	$(PY) -m llmfs.bench

bench-train: setup  ## the course trainer against nanoGPT's recipe on the King James text (CPU, ~4 min)
	$(PY) -m llmfs.bench_train $(BENCH_ARGS)

bench-mlp: setup  ## FULL training time of the NumPy MLP of 01CB/03 on this machine
	$(PY) -m llmfs.bench_mlp

sanitize:  ## build the C++ module with ASan+UBSan and run the kernel tests under it
	bash cpp_kernels/sanitize.sh

clean:  ## remove build outputs (keeps .venv and the asset cache)
	rm -rf build
