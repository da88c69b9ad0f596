#!/usr/bin/env bash
# Equal-step A/B of the mel stage's generator-side choices (issue 13), from scratch on the frozen encoder:
# the same seed, data, batches and schedule as configs/tokenizer_long_mel.toml, 1200 steps, validation every 400.
#   A: the long run's config as it stood then: multi-resolution mel L1 only, the small preset's width 256 (the
#      config now has C's width, so A and B pin 256 here)
#   B: A + the STFT log-magnitude L1 on the head's 1280/320 grid and 512/128, 128/32 (weight 15)
#   C: A + decoder width 384 (intermediate 1152)
# Each arm runs on one thread; all three at once on this 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
common=(steps=1200 eval_every=400 save_every=400 threads=1)
export PATH="$PWD/.venv/bin:$PATH"
run() {
    local name=$1; shift
    OMP_NUM_THREADS=1 nohup dashtok train configs/tokenizer_long_mel.toml --set out=runs/ab_mel_$name "${common[@]}" "$@" \
        > runs/ab_mel_$name.log 2>&1 &
}
narrow='tokenizer.decoder_overrides={"max_magnitude": 1000.0}'
run A "$narrow"
run B "$narrow" 'tokenizer.loss_weights={"mel/l1": 45.0, "stft/l1": 15.0, "adv/gen": 1.0, "adv/feat": 2.0}'
run C 'tokenizer.decoder_overrides={"max_magnitude": 1000.0, "dim": 384, "intermediate_dim": 1152}'
wait
