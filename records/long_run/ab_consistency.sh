#!/usr/bin/env bash
# The head-consistency loss (issue 29, session 32; losses.consistency_loss): arm K is ab_nogan.sh's arm N (the
# default's losses without the discriminators, restored from the bundled default at step 9600, same seed, data,
# batches and schedule) plus "head/consistency" at WEIGHT (the default's loss is 0.51 on the validation split's real
# speech: weight 5 gives it about half the phase terms' share). Judged against N at equal steps by the runs' own
# validation, and by limits.py (the energy the head's spectrum keeps in the overlap-add) on the validation split.
# Usage: records/long_run/ab_consistency.sh CORPUS RUNS MINUTES [WEIGHT]   (e.g. ~/dashtok-runs/corpus ~/dashtok-runs 18 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
corpus=$1 runs=$2 minutes=$3 weight=${4:-5}
start=()  # the first call restores the default; a second one resumes the run folder bit for bit
[ -d "$runs/ab_consist_K/checkpoints" ] || start=(--resume-from src/dashtok/assets/default.safetensors
                                                  --disc records/long_run/phase_stage.disc.safetensors)
OMP_NUM_THREADS=1 nohup dashtok train configs/tokenizer_long_gan.toml "${start[@]}" \
    --set "out=$runs/ab_consist_K" threads=1 eval_every=400 save_every=200 "max_minutes=$minutes" \
    "data.manifests=[\"$corpus/train.jsonl\"]" "data.valid_manifests=[\"$corpus/valid.jsonl\"]" \
    tokenizer.init=records/long_run/mel_stage.safetensors tokenizer.gan_start=1000000 \
    "tokenizer.loss_weights={\"mel/l1\": 45.0, \"adv/gen\": 1.0, \"adv/feat\": 64.0, \"stft/l1\": 15.0, \"phase/gd\": 3.0, \"phase/if\": 3.0, \"head/consistency\": $weight}" \
    >> "$runs/ab_consist_K.log" 2>&1 &
wait
