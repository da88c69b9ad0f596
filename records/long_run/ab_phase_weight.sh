#!/usr/bin/env bash
# A higher phase weight without the discriminators (issue 29, session 33): arm H is ab_nogan.sh's arm N (the default's
# losses without the discriminators, restored from the bundled default at step 9600, same seed, data, batches and
# schedule) with "phase/gd" and "phase/if" at WEIGHT each instead of 3. At 3 the two terms are about 30 % of N's total
# (mel 45 x 0.11, stft 15 x 0.28, each phase term 3 x 0.65); at 10 they are about 60 %. Judged against N at equal steps
# by the runs' own validation, and by limits.py on the validation split.
# Usage: records/long_run/ab_phase_weight.sh CORPUS RUNS MINUTES [WEIGHT]   (e.g. ~/dashtok-runs/corpus ~/dashtok-runs 60 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
corpus=$1 runs=$2 minutes=$3 weight=${4:-10}
start=()  # the first call restores the default; a second one resumes the run folder bit for bit
[ -d "$runs/ab_phase_H/checkpoints" ] || start=(--resume-from src/dashtok/assets/default.safetensors
                                                --disc records/long_run/phase_stage.disc.safetensors)
OMP_NUM_THREADS=1 nohup dashtok train configs/tokenizer_long_gan.toml "${start[@]}" \
    --set "out=$runs/ab_phase_H" threads=1 eval_every=400 save_every=200 "max_minutes=$minutes" \
    "data.manifests=[\"$corpus/train.jsonl\"]" "data.valid_manifests=[\"$corpus/valid.jsonl\"]" \
    tokenizer.init=records/long_run/mel_stage.safetensors tokenizer.gan_start=1000000 \
    "tokenizer.loss_weights={\"mel/l1\": 45.0, \"adv/gen\": 1.0, \"adv/feat\": 64.0, \"stft/l1\": 15.0, \"phase/gd\": $weight, \"phase/if\": $weight}" \
    >> "$runs/ab_phase_H.log" 2>&1 &
wait
