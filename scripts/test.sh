#!/usr/bin/env bash
# The whole test suite from a fresh checkout: a virtual environment, the CPU build of torch first
# (an unpinned torch would pull a multi-GB CUDA build), the package with its test extra, then
# lint, unit tests, doctests and the notebooks, spread over the cores (pytest-xdist).
#
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh --fast     the fast tier: every module, no process clusters, kills,
#                                   training, notebooks or benchmark runs (-m "not slow")
# Other arguments go to pytest (e.g. -k resume, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/ruff check dask_classify tests benchmarks
args=()
for arg in "$@"; do
  if [ "$arg" = "--fast" ]; then args+=(-m "not slow"); else args+=("$arg"); fi
done
# pytest exits 5 when it collects nothing: that is a failure here too.
.venv/bin/python -m pytest tests dask_classify notebooks --doctest-modules --nbmake \
  -n "${TEST_WORKERS:-auto}" --dist loadgroup ${args[@]+"${args[@]}"}
