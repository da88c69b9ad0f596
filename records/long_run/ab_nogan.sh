#!/usr/bin/env bash
# Equal-start A/B (issue 29, session 32): is the GAN what makes a step of the phase-loss recipe expensive without
# teaching the phase? Both arms restore the bundled default (arm P at step 9600: averaged weights, its step's
# discriminators; AdamW re-warms its moments) with the same seed, data, batches and schedule
# (configs/tokenizer_long_gan.toml, cosine over 30000 steps), one thread each, side by side, same wall-clock budget:
#   P: the default's recipe (mel 45, adversarial 1, feature matching 64, STFT log-magnitude 15, group delay 3,
#      instantaneous frequency 3)
#   N: the same losses without the discriminators (gan_start past the schedule's end: no adversarial or feature-
#      matching term, no discriminator step), so that a step costs a fraction of P's
# Judged at equal steps and at equal wall-clock by the runs' own validation (eval_every: PESQ-WB/STOI on the
# validation split's real speech, the phase errors on speech, mel distance, artifact tone) and limits.py on the
# validation split; never on the test split or the reserved packages.
# Usage: records/long_run/ab_nogan.sh CORPUS RUNS MINUTES    (e.g. ~/dashtok-runs/corpus ~/dashtok-runs 85)
set -euo pipefail
here=$(dirname "$0")
losses='{"mel/l1": 45.0, "adv/gen": 1.0, "adv/feat": 64.0, "stft/l1": 15.0, "phase/gd": 3.0, "phase/if": 3.0}'
for arm in P N; do
    extra=()
    [ "$arm" = N ] && extra=(tokenizer.gan_start=1000000)
    "$here/ab_arm.sh" "ab_nogan_$arm" "$1" "$2" "$3" "$here/../../src/dashtok/assets/default.safetensors" \
        "$here/phase_stage.disc.safetensors" "$losses" "${extra[@]}" &
done
wait
