#!/usr/bin/env bash
# The head-consistency loss (issue 29, session 32; losses.consistency_loss): arm K is ab_nogan.sh's arm N (the
# default's losses without the discriminators, restored from the bundled default at step 9600, same seed, data,
# batches and schedule) plus "head/consistency" at WEIGHT (the default's loss is 0.51 on the validation split's real
# speech: weight 5 gives it about half the phase terms' share). Judged against N at equal steps by the runs' own
# validation, and by limits.py (the energy the head's spectrum keeps in the overlap-add) on the validation split.
# Dropped in session 33 (records/long_run/README.md).
# Usage: records/long_run/ab_consistency.sh CORPUS RUNS MINUTES [WEIGHT]   (e.g. ~/dashtok-runs/corpus ~/dashtok-runs 18 5)
set -euo pipefail
here=$(dirname "$0")
exec "$here/ab_arm.sh" ab_consist_K "$1" "$2" "$3" "$here/../../src/dashtok/assets/default.safetensors" \
    "$here/phase_stage.disc.safetensors" \
    "{\"mel/l1\": 45.0, \"adv/gen\": 1.0, \"adv/feat\": 64.0, \"stft/l1\": 15.0, \"phase/gd\": 3.0, \"phase/if\": 3.0, \"head/consistency\": ${4:-5}}" \
    tokenizer.gan_start=1000000
