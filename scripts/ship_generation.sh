#!/usr/bin/env bash
# Make finished flow and enhance runs the bundled generator and enhancer, with their configs, logs and curves beside;
# with the flow run alone, only the generator (the bundled enhancer and its records stay).
#   bash scripts/ship_generation.sh runs/flow_small logs/flow_small.log [runs/enhance_small logs/enhance_small.log]
set -euo pipefail
cd "$(dirname "$0")/.."
FLOW=${1:?flow run folder}; FLOW_LOG=${2:?flow training log}
ENH=${3:-}; ENH_LOG=${4:-}
if [ -n "$ENH" ] && [ -z "$ENH_LOG" ]; then echo "ship: an enhance run folder needs its training log too"; exit 1; fi
DEST=records/generation
test -f "$FLOW/generator.safetensors" || { echo "ship: $FLOW/generator.safetensors missing (finish the run)"; exit 1; }
if [ -n "$ENH" ]; then
  test -f "$ENH/enhancer.safetensors" || { echo "ship: $ENH/enhancer.safetensors missing (finish the run)"; exit 1; }
fi
mkdir -p "$DEST"
cp "$FLOW/generator.safetensors" src/dashtok/assets/generator.safetensors
cp "$FLOW/config.toml" "$DEST/flow_config.toml"; cp "$FLOW/metrics.csv" "$DEST/flow_metrics.csv"
cp "$FLOW_LOG" "$DEST/flow_train.log"
runs=("$FLOW:flow")
if [ -n "$ENH" ]; then
  cp "$ENH/enhancer.safetensors" src/dashtok/assets/enhancer.safetensors
  cp "$ENH/config.toml" "$DEST/enhance_config.toml"; cp "$ENH/metrics.csv" "$DEST/enhance_metrics.csv"
  cp "$ENH_LOG" "$DEST/enhance_train.log"
  # its validation curve, when it had one (and no other run's curve left beside it when it had none)
  if [ -f "$ENH/eval.csv" ]; then cp "$ENH/eval.csv" "$DEST/enhance_eval.csv"; else rm -f "$DEST/enhance_eval.csv"; fi
  runs+=("$ENH:enhance")
fi
for pair in "${runs[@]}"; do  # each start's --set overrides (runs made before this record lack it)
  if [ -f "${pair%:*}/invocations.jsonl" ]; then cp "${pair%:*}/invocations.jsonl" "$DEST/${pair#*:}_invocations.jsonl"; fi
done
curves=$DEST/curves.png; [ -n "$ENH" ] || curves=$DEST/flow_curves.png  # the pair's curves stay when one ships
.venv/bin/dashtok eval curves "${runs[@]%:*}" -o "$curves" -f
.venv/bin/python - <<'PY'
from dashtok.generate.enhance import LatentEnhancer
from dashtok.generate.model import TextToAudio
for m in (TextToAudio.from_pretrained(), LatentEnhancer.from_pretrained()):
    print(f"ship: {type(m).__name__} for {m.tokenizer_id}: {m.training_record}")
PY
