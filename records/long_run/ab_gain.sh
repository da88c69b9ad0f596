#!/usr/bin/env bash
# Equal-step A/B of random gain augmentation (issue 13; tokenizer.gain_db). Both arms fine-tune part 1's final model
# (records/long_run/mel_stage.safetensors: mel-only, 10000 steps) for 400 more mel-only steps, same seed, data and
# batches, lr 2e-4 constant after 20 warm-up steps, moving average 0.99:
#   N: the clips at their own level (as every run so far)
#   G: each crop at 0, -15 or -30 dB, uniformly (the encoder's features cached at each level)
# then scores each arm's exported model on the validation split's real speech at 0 / -10 / -20 / -30 dB input
# (limits.py; the test split stays untouched for the final report).
# Usage: records/long_run/ab_gain.sh   (the two arms at once, one thread each)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
common=(steps=400 warmup=20 schedule=constant lr=2e-4 eval_every=200 save_every=200 threads=1
        tokenizer.init=records/long_run/mel_stage.safetensors tokenizer.warm_start=true tokenizer.ema_decay=0.99)
OMP_NUM_THREADS=1 dashtok train configs/tokenizer_long_mel.toml --set out=runs/ab_gain_N "${common[@]}" \
    > runs/ab_gain_N.log 2>&1 &
OMP_NUM_THREADS=1 dashtok train configs/tokenizer_long_mel.toml --set out=runs/ab_gain_G "${common[@]}" \
    'tokenizer.gain_db=[-15.0, -30.0]' > runs/ab_gain_G.log 2>&1 &
wait
for arm in N G; do
    OMP_NUM_THREADS=1 python records/long_run/limits.py runs/ab_gain_$arm/model.safetensors \
        --manifest data/corpus/valid.jsonl --per-source 20 --json records/long_run/ab_gain_$arm.json
done
