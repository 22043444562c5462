#!/usr/bin/env bash
# The Colab path of every notebook's setup cell: install this clone of the course into the running
# Python the way `make install` does, with the course's tested versions of everything but torch
# (Colab's own torch, with its GPU support, stays), then fetch the data. Safe to run twice.
#   bash tools/colab_setup.sh [PYTHON]   (from anywhere; it works on the clone it sits in)
# The C++ module is built in place (next to the sources), so that the running kernel, whose working
# folder becomes the clone, imports the package from there without a restart.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-python3}"
# Pinned versions of everything the notebooks use, the build tools too (the C++ module is compiled
# without build isolation, as `make install` does). Left out: torch (Colab's own, with its CUDA) and
# the Jupyter and test tooling (Colab's runtime brings its own kernel and front end).
grep -v -E '^(torch|jupyterlab|notebook|nbconvert|nbclient|nbformat|ipykernel|ipywidgets|pytest|pytest-[a-z]+|nbval|hypothesis|ruff)==' \
  requirements.txt > "${TMPDIR:-/tmp}/llmfs-requirements.txt"
"$PYTHON" -m pip install -q -r "${TMPDIR:-/tmp}/llmfs-requirements.txt"
"$PYTHON" -m pip install -q --no-deps --no-build-isolation --config-settings=editable.mode=inplace -e .
"$PYTHON" -m llmfs.assets fetch --all
