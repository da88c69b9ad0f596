#!/usr/bin/env bash
# One arm of the phase A/Bs of issue 29 (sessions 32-33) on configs/tokenizer_long_gan.toml, on one thread: the first
# call restores FROM (packed averaged weights, with DISC its discriminators; AdamW re-warms its moments, the schedule
# and batches go on from FROM's step), a later call continues the run folder RUNS/NAME bit for bit. LOSSES is the
# loss-weight table; KEY=VALUE pairs after it go to --set as they are (tokenizer.gan_start=1000000: no discriminators).
# Validation every 400 steps on the corpus's validation split; the log is RUNS/NAME.log.
# Usage: records/long_run/ab_arm.sh NAME CORPUS RUNS MINUTES FROM DISC LOSSES [KEY=VALUE ...]
set -euo pipefail
name=$1 corpus=$(realpath -m "$2") runs=$(realpath -m "$3") minutes=$4 from=$(realpath -m "$5") disc=$(realpath -m "$6") losses=$7
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
shift 7
start=()
[ -d "$runs/$name/checkpoints" ] || start=(--resume-from "$from" --disc "$disc")
OMP_NUM_THREADS=1 nohup dashtok train configs/tokenizer_long_gan.toml "${start[@]}" \
    --set "out=$runs/$name" threads=1 eval_every=400 save_every=200 "max_minutes=$minutes" \
    "data.manifests=[\"$corpus/train.jsonl\"]" "data.valid_manifests=[\"$corpus/valid.jsonl\"]" \
    tokenizer.init=records/long_run/mel_stage.safetensors "tokenizer.loss_weights=$losses" "$@" \
    >> "$runs/$name.log" 2>&1 &
wait
