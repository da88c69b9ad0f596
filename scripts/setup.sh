#!/usr/bin/env bash
# Create .venv and install dashtok (editable) with its dev and eval extras. torch is pinned to 2.13.0 in the same
# pip command (and by constraints.txt): an unpinned torch would pull a multi-GB CUDA build. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
  "torch==2.13.0" -e ".[dev,eval,data,train,generate,export]"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, dashtok; print("torch", torch.__version__, "| dashtok", dashtok.__version__)'))"
