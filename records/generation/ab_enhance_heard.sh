#!/usr/bin/env bash
# Equal-step A/B of the enhancer's objective (issue 26: "train the enhancer against what is heard"), both arms from
# scratch on the bundled default's latents, the bundled enhancer's recipe otherwise (configs/enhance_small.toml with
# the 2000 drawn mixtures, seed 0, the same batches), one thread each:
#   M: the latents' mean squared error alone (the bundled enhancer's objective)
#   H: M + the enhanced latents decoded by the frozen tokenizer against the clean audio: multi-resolution mel L1 and
#      log-magnitude STFT L1, weight 1 each
# Judged on the validation mixtures (dashtok eval se --split valid: synthetic speech; the corpus keeps real speech
# for the test split, which reports the winner), PESQ-WB and DNSMOS beside the noisy input and the Wiener baseline.
# (Session 25 read the "dashtok" rows, then the decoder's rendering; since session 27 that is "dashtok, decoder", and
# "dashtok" is the mask rendering of `dashtok enhance`.)
# Usage: records/generation/ab_enhance_heard.sh CORPUS RUNS STEPS    (e.g. ~/dashtok-runs/corpus ~/dashtok-runs 2500)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
corpus=$1 runs=$2 steps=$3
common=(threads=1 "steps=$steps" warmup=150 enhance.extra_mixtures=2000 "data.manifests=[\"$corpus/train.jsonl\"]")
for arm in M H; do
    extra=()
    [ "$arm" = H ] && extra=('enhance.loss_weights={"enhance/mse": 1.0, "mel/l1": 1.0, "stft/l1": 1.0}')
    OMP_NUM_THREADS=1 nohup dashtok train configs/enhance_small.toml --set "out=$runs/ab_enh_$arm" "${common[@]}" \
        "${extra[@]}" >> "$runs/ab_enh_$arm.log" 2>&1 &
done
wait
for arm in M H; do
    OMP_NUM_THREADS=1 dashtok eval se "$corpus" --split valid -e "$runs/ab_enh_$arm/enhancer.safetensors" \
        -o "$runs/ab_enh_${arm}_se" -f
done
