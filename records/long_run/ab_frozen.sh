#!/usr/bin/env bash
# A decoder-only path to the next default (issue 29, session 34). H (ab_phase_weight.sh, weight 10) trains the
# injection too, so its latents are not the bundled default's (7 % apart on the demo clip): shipping it would
# orphan every stored latent and the generator and enhancer trained on them. Arm F takes H's decoder and head at
# step 13091 onto the default's injection and latent statistics (swap_injection.py) and fine-tunes the decoder and
# head alone (tokenizer.freeze_injection) with H's losses, no discriminators; arm FG goes on from F's last
# checkpoint with the discriminators on (the GAN stretch a candidate gets before it ships), the same losses.
# Arm F at step 15115 is the bundled default since session 34. Arm FD (session 35) is F with the output's local mean
# (DC) also supervised (losses.dc_loss at 100: on a batch of the default's speech crops its gradient was about a
# phase term's), since F's 0 Hz tone grew with the phase weight.
# Usage: records/long_run/ab_frozen.sh F0|F|FD|FG CORPUS RUNS MINUTES
#   F0: how F started (session 34): needs RUNS/ab_phase_H13091.safetensors and its .disc (H packed with pack_arm.sh);
#       run folder RUNS/ab_frozen_F
#   F:  F goes on: its run folder RUNS/ab_frozen_F bit for bit where it exists, else restored from the bundled default
#       and phase_stage.disc.safetensors (AdamW re-warms, the schedule and batches go on from the default's step)
#   FD: as F, in RUNS/ab_frozen_FD: restored the same way where that folder is missing, so that F and FD started
#       together are an equal-step A/B
#   FG: needs RUNS/ab_frozen_F.safetensors, packed from F's run folder with pack_arm.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
arm=$1 corpus=$2 runs=$3 minutes=$4
losses='{"mel/l1": 45.0, "adv/gen": 1.0, "adv/feat": 64.0, "stft/l1": 15.0, "phase/gd": 10.0, "phase/if": 10.0}'
case $arm in
  F) exec "$here/ab_arm.sh" ab_frozen_F "$corpus" "$runs" "$minutes" "$here/../../src/dashtok/assets/default.safetensors" \
         "$here/phase_stage.disc.safetensors" "$losses" tokenizer.gan_start=1000000 tokenizer.freeze_injection=true ;;
  FD) exec "$here/ab_arm.sh" ab_frozen_FD "$corpus" "$runs" "$minutes" "$here/../../src/dashtok/assets/default.safetensors" \
         "$here/phase_stage.disc.safetensors" "${losses%\}}, \"dc/l1\": 100.0}" tokenizer.gan_start=1000000 \
         tokenizer.freeze_injection=true ;;
  F0) start=$runs/hybrid_H13091_default_injection.safetensors
     [ -f "$start" ] || "$here/../../.venv/bin/python" "$here/swap_injection.py" "$runs/ab_phase_H13091.safetensors" \
         "$here/../../src/dashtok/assets/default.safetensors" "$start"
     exec "$here/ab_arm.sh" ab_frozen_F "$corpus" "$runs" "$minutes" "$start" "$runs/ab_phase_H13091.disc.safetensors" \
         "$losses" tokenizer.gan_start=1000000 tokenizer.freeze_injection=true ;;
  FG) exec "$here/ab_arm.sh" ab_frozen_FG "$corpus" "$runs" "$minutes" "$runs/ab_frozen_F.safetensors" \
         "$runs/ab_frozen_F.disc.safetensors" "$losses" tokenizer.freeze_injection=true ;;
  *) echo "ab_frozen.sh: arm F0, F, FD or FG, not $arm" >&2; exit 2 ;;
esac
