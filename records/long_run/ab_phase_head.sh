#!/usr/bin/env bash
# Equal-step A/B of the head's phase parametrisation (issue 29, "head parametrisation"), against arm P of
# ab_phase_gan.sh (the GAN with the group-delay and IF losses at weight 3, head = the release's raw angle):
#   R: P with the parallel head (decoder.phase = "parallel": phase = the direction of a predicted (real, imaginary)
#      pair, APNet's parallel phase estimation). From the bundled default (step 3200) like P: every weight but the
#      head's phase rows is the default's; the log-magnitude rows are taken over, the R and I rows start fresh.
# Same seed, data, batches and schedule as P (configs/tokenizer_long_gan.toml), one thread. Judged at equal steps
# against P's record by the runs' own validation (eval_every: PESQ-WB/STOI on the validation split's real speech,
# phase errors on speech), never on the test split or the reserved packages.
# Usage: records/long_run/ab_phase_head.sh CORPUS RUNS MINUTES    (e.g. ~/dashtok-runs/corpus ~/dashtok-runs 85)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
corpus=$1 runs=$2 minutes=$3
# the start: the bundled default of sessions 8-25 (step 3200; the default since session 26 is this A/B's arm P at
# step 9600), taken from the history, with the discriminators of its step
start3200="$runs/default_step3200.safetensors"
[ -f "$start3200" ] || git show 8a49fc8:src/dashtok/assets/default.safetensors > "$start3200"
start=()  # the first call starts from step 3200; a second one resumes the run folder bit for bit
[ -d "$runs/ab_phead_R/checkpoints" ] || start=(--resume-from "$start3200"
                                                --disc records/long_run/gan_stage.disc.safetensors)
OMP_NUM_THREADS=1 nohup dashtok train configs/tokenizer_long_gan.toml "${start[@]}" \
    --set "out=$runs/ab_phead_R" threads=1 eval_every=400 save_every=200 "max_minutes=$minutes" \
    "data.manifests=[\"$corpus/train.jsonl\"]" "data.valid_manifests=[\"$corpus/valid.jsonl\"]" \
    tokenizer.init=records/long_run/mel_stage.safetensors \
    'tokenizer.loss_weights={"mel/l1": 45.0, "adv/gen": 1.0, "adv/feat": 64.0, "stft/l1": 15.0, "phase/gd": 3.0, "phase/if": 3.0}' \
    'tokenizer.decoder_overrides={"max_magnitude": 1000.0, "dim": 384, "intermediate_dim": 1152, "phase": "parallel"}' \
    >> "$runs/ab_phead_R.log" 2>&1 &
wait
