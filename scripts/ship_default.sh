#!/usr/bin/env bash
# Make a finished tokenizer run the bundled default model, with its commands, configs, logs and curves beside it
# (in DEST: by default records/long_run/final, the long run's; records/default_tokenizer holds the previous default's).
#   bash scripts/ship_default.sh runs/tokenizer_long_gan "" records/long_run/final
set -euo pipefail
cd "$(dirname "$0")/.."
TOK=${1:?tokenizer run folder}
MAE=${2:-}
DEST=${3:-records/long_run/final}
test -f "$TOK/model.safetensors" || { echo "ship: $TOK/model.safetensors missing (finish or export the run)"; exit 1; }
mkdir -p "$DEST"
cp "$TOK/model.safetensors" src/dashtok/assets/default.safetensors
for f in config.toml metrics.csv eval.csv train.log; do
  [ -f "$TOK/$f" ] && cp "$TOK/$f" "$DEST/tokenizer_$f"
done
if [ -n "$MAE" ]; then
  for f in config.toml metrics.csv train.log; do
    [ -f "$MAE/$f" ] && cp "$MAE/$f" "$DEST/mae_$f"
  done
fi
.venv/bin/dashtok eval curves $MAE "$TOK" -o "$DEST/curves.png" -f
.venv/bin/dashtok info --json > "$DEST/info.json"
echo "ship: default model is now $(.venv/bin/python -c 'import json;print(json.load(open("'"$DEST"'/info.json"))["model_id"])')"
