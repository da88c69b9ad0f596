#!/usr/bin/env bash
# A higher phase weight without the discriminators (issue 29, session 33): arm H<WEIGHT> is ab_nogan.sh's arm N (the
# default's losses without the discriminators, restored from the bundled default at step 9600, same seed, data,
# batches and schedule) with "phase/gd" and "phase/if" at WEIGHT each instead of 3. At 3 the two terms are about 30 %
# of N's total (mel 45 x 0.11, stft 15 x 0.28, each phase term 3 x 0.65); at 10 about 60 %, at 30 about 80 %.
# Judged against N at equal steps by the runs' own validation, and by limits.py on the validation split. The run
# folder is RUNS/ab_phase_H for weight 10 (its first name), RUNS/ab_phase_H<WEIGHT> for the others.
# Usage: records/long_run/ab_phase_weight.sh CORPUS RUNS MINUTES [WEIGHT]   (e.g. ~/dashtok-runs/corpus ~/dashtok-runs 60 10)
set -euo pipefail
here=$(dirname "$0")
w=${4:-10}
name=ab_phase_H$w
[ "$w" = 10 ] && name=ab_phase_H
exec "$here/ab_arm.sh" "$name" "$1" "$2" "$3" "$here/../../src/dashtok/assets/default.safetensors" \
    "$here/phase_stage.disc.safetensors" \
    "{\"mel/l1\": 45.0, \"adv/gen\": 1.0, \"adv/feat\": 64.0, \"stft/l1\": 15.0, \"phase/gd\": $w.0, \"phase/if\": $w.0}" \
    tokenizer.gan_start=1000000
