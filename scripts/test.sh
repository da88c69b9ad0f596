#!/usr/bin/env bash
# The whole test suite: set up if needed, lint, type-check, run the tests (CPU-only, offline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The corpus tests render audio with Debian's tools; without root (or sudo) they are skipped, and say so.
bash scripts/install_audio_tools.sh || echo "test: could not install the audio tools; corpus tests will be skipped"
# The listening page's test opens it in Debian's Chromium; without root it is skipped, and says so.
bash scripts/install_debian.sh "test tools" chromium \
  || echo "test: could not install Chromium; the listening page's browser test will be skipped"
.venv/bin/ruff check src tests scripts records benchmarks
.venv/bin/mypy src/dashtok --ignore-missing-imports
# scripts/, records/ and benchmarks/ hold scripts, not packages: one mypy run per folder (script names may repeat; the tone
# scripts import their common.py by name), with src on MYPYPATH so that dashtok is type-checked there, not skipped.
for d in $(find scripts benchmarks records -name '*.py' -printf '%h\n' | sort -u); do
  MYPYPATH=src .venv/bin/mypy --ignore-missing-imports "$d"/*.py
done
# tests/ and the fixture scripts import conftest by name (the fixture scripts put tests/ on sys.path): tests on MYPYPATH.
MYPYPATH=src:tests .venv/bin/mypy --ignore-missing-imports tests/*.py tests/fixtures/*.py
native=$(.venv/bin/python -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')
echo "test: CPU capability $native (ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-unset})"
.venv/bin/python -m pytest -q tests "$@"
# The golden-fixture tests again on every other CPU kernel path this machine has: fixtures made by reference code or
# on another CPU must hold within float32 rounding anywhere, so one that only some CPUs can meet fails here.
case "$native" in
  AVX512*) paths="avx2:AVX2 default:SSE4_2" ;;
  AVX2) paths="default:SSE4_2" ;;
  *) paths="" ;;  # no SIMD dispatch to switch off (or not x86)
esac
for p in $paths; do
  echo "test: golden fixtures under ATEN_CPU_CAPABILITY=${p%%:*} (this CPU: $native)"
  ATEN_CPU_CAPABILITY=${p%%:*} MKL_ENABLE_INSTRUCTIONS=${p##*:} .venv/bin/python -m pytest -q -m golden tests "$@"
done
