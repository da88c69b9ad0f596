#!/usr/bin/env bash
# Make finished flow and enhance runs the bundled generator and enhancer, with their configs, logs and curves beside;
# with the flow run alone, only the generator (the bundled enhancer and its records stay). A run tied to another
# tokenizer than the bundled default is refused before anything is copied.
#   bash scripts/ship_generation.sh runs/flow_small logs/flow_small.log [runs/enhance_small logs/enhance_small.log]
set -euo pipefail
cd "$(dirname "$0")/.."
FLOW=${1:?flow run folder}; FLOW_LOG=${2:?flow training log}
ENH=${3:-}; ENH_LOG=${4:-}
if [ -n "$ENH" ] && [ -z "$ENH_LOG" ]; then echo "ship: an enhance run folder needs its training log too"; exit 1; fi
if [ -z "$ENH" ] && [ -n "$ENH_LOG" ]; then echo "ship: an enhance training log needs its run folder too"; exit 1; fi
DEST=records/generation
test -f "$FLOW/generator.safetensors" || { echo "ship: $FLOW/generator.safetensors missing (finish the run)"; exit 1; }
if [ -n "$ENH" ]; then
  test -f "$ENH/enhancer.safetensors" || { echo "ship: $ENH/enhancer.safetensors missing (finish the run)"; exit 1; }
else  # the bundled enhancer stays: its curves are redrawn from its records below
  test -f "$DEST/enhance_metrics.csv" || { echo "ship: $DEST/enhance_metrics.csv missing (the bundled enhancer's records)"; exit 1; }
fi
.venv/bin/python - "$FLOW/generator.safetensors" ${ENH:+"$ENH/enhancer.safetensors"} <<'PY'
import sys
from dashtok import Tokenizer
from dashtok.generate.enhance import LatentEnhancer
from dashtok.generate.model import TextToAudio
default = Tokenizer.from_pretrained()
for path, kind in zip(sys.argv[1:], (TextToAudio, LatentEnhancer)):
    tie = kind.load(path).tie
    if not tie.admits(default):
        sys.exit(f"ship: {path} is tied to {tie.tokenizer_id}, not to the bundled default {default.model_id} or its "
                 f"latents {default.latent_id}")
PY
mkdir -p "$DEST"
cp "$FLOW/generator.safetensors" src/dashtok/assets/generator.safetensors
cp "$FLOW/config.toml" "$DEST/flow_config.toml"; cp "$FLOW/metrics.csv" "$DEST/flow_metrics.csv"
cp "$FLOW_LOG" "$DEST/flow_train.log"
folders=("$FLOW"); names=(flow)
if [ -n "$ENH" ]; then
  cp "$ENH/enhancer.safetensors" src/dashtok/assets/enhancer.safetensors
  cp "$ENH/config.toml" "$DEST/enhance_config.toml"; cp "$ENH/metrics.csv" "$DEST/enhance_metrics.csv"
  cp "$ENH_LOG" "$DEST/enhance_train.log"
  # its validation curve, when it had one (and no other run's curve left beside it when it had none)
  if [ -f "$ENH/eval.csv" ]; then cp "$ENH/eval.csv" "$DEST/enhance_eval.csv"; else rm -f "$DEST/enhance_eval.csv"; fi
  folders+=("$ENH"); names+=(enhance)
fi
for i in "${!folders[@]}"; do  # each start's --set overrides (none left from another run when this one has none)
  src=${folders[$i]}/invocations.jsonl; dst=$DEST/${names[$i]}_invocations.jsonl
  if [ -f "$src" ]; then cp "$src" "$dst"; else rm -f "$dst"; fi
done
# the curves of what ships: the pair's together; or the generator's alone, and the bundled enhancer's redrawn from its
# records (the pair's plot would show the old flow run)
if [ -n "$ENH" ]; then
  curves=$DEST/curves.png; rm -f "$DEST/flow_curves.png" "$DEST/enhance_curves.png"
else
  curves=$DEST/flow_curves.png; rm -f "$DEST/curves.png"
  kept=$(mktemp -d); trap 'rm -rf "$kept"' EXIT; mkdir "$kept/enhance"
  cp "$DEST/enhance_metrics.csv" "$kept/enhance/metrics.csv"
  if [ -f "$DEST/enhance_eval.csv" ]; then cp "$DEST/enhance_eval.csv" "$kept/enhance/eval.csv"; fi
  .venv/bin/dashtok eval curves "$kept/enhance" -o "$DEST/enhance_curves.png" -f
fi
.venv/bin/dashtok eval curves "${folders[@]}" -o "$curves" -f
.venv/bin/python - <<'PY'
from dashtok.generate.enhance import LatentEnhancer
from dashtok.generate.model import TextToAudio
for m in (TextToAudio.from_pretrained(), LatentEnhancer.from_pretrained()):
    print(f"ship: {type(m).__name__} for {m.tie.tokenizer_id} ({m.tie.latent_id}): {m.training_record}")
PY
