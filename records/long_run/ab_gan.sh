#!/usr/bin/env bash
# Equal-step A/B of the GAN stage's discriminator choices (issue 13): every arm starts from the bundled default's
# weights (a decoder that has seen 2000 mel and 1000 GAN steps) and takes the same 400 GAN steps (same seed, data,
# batches, constant learning rate), validation at 200 and 400.
#   G0: today's discriminators (magnitude multi-resolution, 16-channel multi-period), feature matching 2, D lr 2e-4
#   G1: G0 with complex-spectrum multi-resolution discriminators and 32-channel multi-period ones
#   G2: G0 with feature matching summed over the 32 feature maps (weight 2 x 32 = 64) and D lr = G lr (5e-4)
# Usage: records/long_run/ab_gan.sh G0 G1 G2   (each arm on one thread; the arms named run at once)
set -euo pipefail
cd "$(dirname "$0")/../.."
common=(out=runs/ab_gan_ARM steps=400 warmup=1 schedule=constant eval_every=200 save_every=200 threads=1
        tokenizer.init=src/dashtok/assets/default.safetensors tokenizer.warm_start=true tokenizer.gan_start=0
        tokenizer.ema_decay=0.0 tokenizer.decoder_overrides={})
export PATH="$PWD/.venv/bin:$PATH"
for arm in "$@"; do
    case $arm in
        G0) extra=() ;;
        G1) extra=(tokenizer.disc_complex=true tokenizer.disc_period_channels=32) ;;
        G2) extra=('tokenizer.loss_weights={"mel/l1": 45.0, "adv/gen": 1.0, "adv/feat": 64.0}' tokenizer.disc_lr=5e-4) ;;
        *) echo "unknown arm $arm" >&2; exit 2 ;;
    esac
    OMP_NUM_THREADS=1 nohup dashtok train configs/tokenizer_long_mel.toml --set "${common[@]/ARM/$arm}" "${extra[@]}" \
        > runs/ab_gan_$arm.log 2>&1 &
done
wait
