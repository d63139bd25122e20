#!/usr/bin/env bash
# Set up sketch2face from nothing: a virtual environment in .venv with every extra installed.
# Needs only Python 3.11 and pip. Safe to run again (pip skips what is already there).
#
#   bash scripts/setup.sh            # everything (model, web, S3, PostgreSQL, ONNX, GFPGAN, tests)
#
# torch 2.14.1 + torchvision 0.29.1 are pinned as a pair: torchvision (needed by spandrel, the
# GFPGAN loader) only imports beside the torch build it was made for.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=24" 2>/dev/null || true
echo "installing torch + torchvision"
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
echo "installing sketch2face with all extras"
.venv/bin/python -m pip install -q -e ".[all,dev]"
.venv/bin/python -c "import sketch2face, torch; print(f'sketch2face {sketch2face.__version__} ready (torch {torch.__version__})')"
