#!/usr/bin/env bash
# The whole test suite: set up if needed, lint, type-check, run the tests (CPU-only, offline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The corpus tests render audio with Debian's tools; without root (or sudo) they are skipped, and say so.
bash scripts/install_audio_tools.sh || echo "test: could not install the audio tools; corpus tests will be skipped"
.venv/bin/ruff check src tests scripts
.venv/bin/mypy src/dashtok --ignore-missing-imports
.venv/bin/python -m pytest -q tests "$@"
