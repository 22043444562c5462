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

.PHONY: help setup lab test colab threads unit integration full lint notebooks assets install vendor slides bench bench-train bench-mlp \
	sanitize clean python-version

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

# numpy 2.4 (pinned) needs Python 3.11 or newer: say so before anything is installed.
python-version:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || { \
	  echo "LLMFS needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo missing)."; \
	  echo "Install one (e.g. python3.11) and run: make $(MAKECMDGOALS) PYTHON=python3.11"; exit 1; }

$(PY): | python-version
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
	@command -v npm >/dev/null || { echo "make slides needs npm (Node.js) to fetch reveal.js, require.js, jQuery and MathJax"; exit 1; }
	@mkdir -p $(VENDOR)
	cd $(VENDOR) && for p in $(NPM_VENDOR); do \
	  name=$${p%@*}; tgz=$$(npm pack --silent $$p 2>/dev/null | tail -1) && \
	  rm -rf $$name && mkdir -p $$name && tar -xzf $$tgz -C $$name --strip-components=1 && rm -f $$tgz \
	  || { echo "npm could not fetch $$p: is the npm registry reachable?"; exit 1; }; done
	@touch $@

vendor: $(VENDOR)/.stamp  ## fetch the offline slide scripts (needs npm; only `make slides` uses them)

# The slide scripts come along when npm is there; without npm everything but `make slides` works.
setup: install assets  ## everything, once: venv, package, assets (and the slide scripts if npm is installed)
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory vendor; \
	else echo "npm not found: skipping the offline slide scripts (only \`make slides\` needs them)"; fi

lab: setup  ## set up, then open the course in JupyterLab
	$(PY) -m jupyter lab $(ALLOW_ROOT) $(LAB_ARGS)

# The tests run with the network cut off (tests/offline.sh), proving that nothing downloads after setup.
# Two pytest-xdist workers, whole files each (--dist loadfile: a notebook's cells stay together), with one
# BLAS/torch thread each: two threads per process fighting over 2 cores were measured 2-10x slower.
NBVAL := --nbval --nbval-current-env --nbval-cell-timeout=600
XDIST := -n 2 --dist loadfile
NO_TESTS_OK := rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi; exit $$rc

# The Colab simulation installs from the package index, so it runs first, online; everything else offline.
test: setup lint colab  ## set up, then run every test: unit, integration and every notebook (FAST mode), offline
	@OMP_NUM_THREADS=1 LLMFS_FAST=1 sh tests/offline.sh $(PYTEST) -q $(XDIST) -m "not colab" tests $(SERIES) \
	  assets/template.ipynb $(NBVAL) $(PYTEST_ARGS); $(NO_TESTS_OK)
	@$(MAKE) --no-print-directory threads

# No assert may depend on the thread count: every notebook again, two threads per kernel (a learner's default
# on a 2-core machine); the first pass used one. Floating-point sums split differently across threads.
# One notebook at a time: two kernels of two threads each on two cores would slow both several times over.
threads: install  ## every notebook again in FAST mode with 2 threads per kernel (part of `make test`), offline
	@OMP_NUM_THREADS=2 LLMFS_FAST=1 sh tests/offline.sh $(PYTEST) -q $(SERIES) assets/template.ipynb \
	  $(NBVAL) $(PYTEST_ARGS); $(NO_TESTS_OK)

colab: setup  ## the Colab path simulated: a fresh env outside the repo runs each series' first notebook's setup cell
	@$(PYTEST) -q -m colab tests/test_colab.py $(PYTEST_ARGS); $(NO_TESTS_OK)

unit: install  ## the fast unit tests only (no JupyterLab, torchrun, downloads or C++ rebuilds; < 90 s)
	@OMP_NUM_THREADS=1 LLMFS_FAST=1 $(PYTEST) -q $(XDIST) -m "not integration and not colab" tests $(PYTEST_ARGS); $(NO_TESTS_OK)

integration: setup  ## the slower tests of the tooling: JupyterLab, nbval, slides, torchrun, C++ builds, the wheel
	@OMP_NUM_THREADS=1 LLMFS_FAST=1 sh tests/offline.sh $(PYTEST) -q $(XDIST) -m integration tests $(PYTEST_ARGS); $(NO_TESTS_OK)

notebooks: setup  ## only the notebooks (FAST mode)
	@OMP_NUM_THREADS=1 LLMFS_FAST=1 sh tests/offline.sh $(PYTEST) -q $(XDIST) $(SERIES) assets/template.ipynb \
	  $(NBVAL) $(PYTEST_ARGS); $(NO_TESTS_OK)

# FULL mode as a learner runs it: default threads, the headline sizes; each notebook must pass within 15 minutes.
full: setup  ## every notebook in FULL mode (default threads); wall times and headline numbers into the series READMEs
	$(PY) -m tools.full $(FULL_ARGS)

lint: install  ## ruff, configured in pyproject.toml: zero findings
	$(PY) -m ruff check --quiet llmfs tools tests assets conftest.py

slides: setup vendor  ## execute every notebook (FAST) and render offline reveal.js slides into build/slides
	LLMFS_FAST=1 $(PY) -m tools.slides $(SERIES) --out build/slides --vendor $(VENDOR)

bench: install  ## print each kernel's speed and its ratio to a baseline measured in the same run
	$(PY) -m tools.bench

bench-train: setup  ## the course trainer against nanoGPT's recipe on the King James text (CPU, ~4 min)
	$(PY) -m tools.bench_train $(BENCH_ARGS)

bench-mlp: setup  ## FULL training time of the NumPy MLP of 01CB/03 on this machine
	$(PY) -m tools.bench_mlp

sanitize:  ## build the C++ module with ASan+UBSan and run the kernel tests under it
	bash cpp_kernels/sanitize.sh

# The C++ module is installed into .venv (not run from build/), so `make test` works after a clean.
clean:  ## remove build outputs: build/ (C++ objects, slides, slide scripts); keeps .venv and the asset cache
	rm -rf build
