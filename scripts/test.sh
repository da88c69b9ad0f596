#!/usr/bin/env bash
# The whole test suite: set up if needed, lint, type-check, run the tests (CPU-only, offline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests scripts
.venv/bin/mypy src/dashtok --ignore-missing-imports
.venv/bin/python -m pytest -q tests "$@"
