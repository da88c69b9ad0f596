#!/usr/bin/env bash
# Issue 26's generator comparison at equal budget: one 4500-step generator (3x session 26's 1500 steps) on the
# bundled default's latents ("dashtok") or on the VAE baseline's ("vae", records/generation/vae/), one seed.
#   bash records/generation/generators_4500.sh CORPUS RUNS dashtok|vae SEED [THREADS] [MAX_MINUTES]
# 75-100 min on 2 threads of a 2-core AVX2 CPU (0.84-1.38 s a step, sessions 27-28), alone. MAX_MINUTES (default
# 0: none) stops the loop with a checkpoint after that long; started again with the same arguments the run goes on
# from its last checkpoint (saved every 200 steps, and at such a stop), bit for bit on the same machine.
set -euo pipefail
CORPUS=$(realpath "${1:?corpus folder}"); RUNS=$(realpath -m "${2:?runs folder}")  # as given, before the cd
ARM=${3:?dashtok or vae}; SEED=${4:?seed}; THREADS=${5:-2}; MAX_MINUTES=${6:-0}
cd "$(dirname "$0")/../.."
test -f "$CORPUS/train.jsonl" || { echo "generators_4500: $CORPUS is not a corpus folder (no train.jsonl)"; exit 1; }
case "$ARM" in
  dashtok) CODEC=src/dashtok/assets/default.safetensors ;;
  vae) CODEC=records/generation/vae/vae.safetensors ;;
  *) echo "generators_4500: ARM must be dashtok or vae, not $ARM"; exit 1 ;;
esac
mkdir -p "$RUNS/logs"
.venv/bin/dashtok train configs/flow_small.toml --set steps=4500 warmup=450 "threads=$THREADS" "seed=$SEED" "max_minutes=$MAX_MINUTES" \
  "out=$RUNS/flow_${ARM}_s$SEED" "flow.tokenizer=$CODEC" flow.autocast=auto \
  "data.manifests=[\"$CORPUS/train.jsonl\"]" >> "$RUNS/logs/flow_${ARM}_s$SEED.log" 2>&1
