#!/usr/bin/env bash
# An ab_arm.sh run folder's latest checkpoint (its moving average) as a dashtok model file OUT, with the
# discriminators of that step beside it (OUT's name with .disc.safetensors): the FROM and DISC of a later arm.
# No latent statistics are measured (a frozen-injection arm keeps its starting model's; others get them when a
# default ships: --stats). Usage: records/long_run/pack_arm.sh RUN_FOLDER OUT
set -euo pipefail
run=$(realpath -m "$1") out=$(realpath -m "$2")
cd "$(dirname "$0")/../.."
OMP_NUM_THREADS=1 .venv/bin/dashtok train configs/tokenizer_long_gan.toml --set "out=$run" threads=1 \
    tokenizer.init=records/long_run/mel_stage.safetensors --pack "$out"
