#!/usr/bin/env bash
# Equal-step A/B of the phase losses inside the GAN (issue 29, "phase losses through the whole decoder"): both arms
# continue part 2 of the long run from the bundled default (step 3200: averaged weights + the discriminators of that
# step, dashtok train --resume-from), same seed, data, batches and schedule (configs/tokenizer_long_gan.toml,
# cosine over 30000 steps), one thread each, side by side, for the same wall-clock budget:
#   C: the run as configured (mel 45, adversarial 1, feature matching 64, STFT log-magnitude 15)
#   P: C + APNet's magnitude-weighted anti-wrapped group-delay and instantaneous-frequency losses on the head's grid
#      (1280/320), weight 3 each
# Judged at equal steps by the runs' own validation (eval_every: PESQ-WB/STOI on the validation split's real speech,
# and the phase errors on speech), never on the test split or the reserved packages.
# Usage: records/long_run/ab_phase_gan.sh CORPUS RUNS MINUTES    (e.g. ~/dashtok-runs/corpus ~/dashtok-runs 70)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
corpus=$1 runs=$2 minutes=$3
# the start: the bundled default of sessions 8-25 (step 3200; the default since session 26 is this A/B's arm P at
# step 9600), taken from the history, with the discriminators of its step
start3200="$runs/default_step3200.safetensors"
[ -f "$start3200" ] || git show 8a49fc8:src/dashtok/assets/default.safetensors > "$start3200"
common=(threads=1 eval_every=400 save_every=200 "max_minutes=$minutes"
        "data.manifests=[\"$corpus/train.jsonl\"]" "data.valid_manifests=[\"$corpus/valid.jsonl\"]"
        tokenizer.init=records/long_run/mel_stage.safetensors)
phase='tokenizer.loss_weights={"mel/l1": 45.0, "adv/gen": 1.0, "adv/feat": 64.0, "stft/l1": 15.0, "phase/gd": 3.0, "phase/if": 3.0}'
for arm in C P; do
    extra=()
    [ "$arm" = P ] && extra=("$phase")
    start=()  # the first call starts from step 3200; a second one resumes the run folder bit for bit
    [ -d "$runs/ab_pgan_$arm/checkpoints" ] || start=(--resume-from "$start3200"
                                                      --disc records/long_run/gan_stage.disc.safetensors)
    OMP_NUM_THREADS=1 nohup dashtok train configs/tokenizer_long_gan.toml "${start[@]}" \
        --set "out=$runs/ab_pgan_$arm" "${common[@]}" "${extra[@]}" >> "$runs/ab_pgan_$arm.log" 2>&1 &
done
wait
