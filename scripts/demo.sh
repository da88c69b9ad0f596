#!/usr/bin/env bash
# Set everything up, then run the main job on the bundled default model: reconstruct the bundled real speech clip,
# writing its latents, the reconstructed wav and the measured quality and speed (metrics.json) to out/demo, then
# generate a clip from a caption with the bundled generator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/dashtok info
.venv/bin/dashtok reconstruct src/dashtok/assets/demo_speech.flac -o out/demo --force
.venv/bin/dashtok generate "a piano plays a slow melody" --seconds 5 -o out/demo/generated_piano.wav --force
