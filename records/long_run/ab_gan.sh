#!/usr/bin/env bash
# Equal-step A/B of the GAN stage's choices (issue 13). Every arm starts from the same mel-only model: arm C of
# ab_mel.sh (the long run's decoder, 384 wide, 1200 mel steps; its raw weights saved as a tokenizer file) and takes
# the same 300 GAN steps (same seed, data, batches, constant learning rate after 20 warm-up steps, fresh
# discriminators), validation at 150 and 300.
#   G0: today's discriminators (magnitude multi-resolution, 16-channel multi-period), feature matching 2, D lr 2e-4
#   G1: G0 with complex-spectrum multi-resolution discriminators and 32-channel multi-period ones
#   G2: G0 with feature matching summed over the 32 feature maps (weight 2 x 32 = 64) and D lr = G lr (5e-4)
#   G3: G0 with the STFT log-magnitude L1 on the head's grid (1280/320, weight 15)
# The start file was written from arm C's checkpoint with
#   m = build_tokenizer(TrainConfig.load("configs/tokenizer_long_mel.toml"))   (dashtok.train.tokenizer_stage)
#   m.load_state_dict(load_file("runs/ab_mel_C/checkpoints/step-0001200/model.safetensors")); m.save(
#       "runs/ab_mel_C/raw_step1200.safetensors", training={"trained": True, "stage": "tokenizer", "steps": 1200})
# Usage: records/long_run/ab_gan.sh G0 G1 G2 G3   (each arm on one thread; the arms named run at once)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
common=(out=runs/ab_gan_ARM steps=300 warmup=20 schedule=constant eval_every=150 save_every=150 threads=1
        tokenizer.init=runs/ab_mel_C/raw_step1200.safetensors tokenizer.warm_start=true tokenizer.gan_start=0
        tokenizer.ema_decay=0.0)
base='"mel/l1": 45.0, "adv/gen": 1.0'
for arm in "$@"; do
    case $arm in
        G0) extra=() ;;
        G1) extra=(tokenizer.disc_complex=true tokenizer.disc_period_channels=32) ;;
        G2) extra=("tokenizer.loss_weights={$base, \"adv/feat\": 64.0}" tokenizer.disc_lr=5e-4) ;;
        G3) extra=("tokenizer.loss_weights={$base, \"adv/feat\": 2.0, \"stft/l1\": 15.0}"
                   'tokenizer.stft_resolutions=[[1280, 320]]') ;;
        *) echo "unknown arm $arm" >&2; exit 2 ;;
    esac
    OMP_NUM_THREADS=1 nohup dashtok train configs/tokenizer_long_mel.toml --set "${common[@]/ARM/$arm}" "${extra[@]}" \
        > runs/ab_gan_$arm.log 2>&1 &
done
wait
