#!/usr/bin/env bash
# Equal-step A/B of flow.autocast: the bundled generator's recipe (configs/flow_small.toml, seed 0, the same batches
# and noise) in float32 against bf16 autocast, one thread each, on the bundled default's latents. The same batches make
# the training losses a paired comparison, step by step; then both generators are judged by dashtok eval gen (the
# music captions too) beside each other. The default (fp32) becomes "auto" only if bf16 is no worse.
# Usage: records/generation/ab_flow_bf16.sh CORPUS RUNS STEPS    (e.g. ~/dashtok-runs/corpus ~/dashtok-runs 600)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
corpus=$1 runs=$2 steps=$3
pids=()
for arm in fp32 bf16; do
    [ -e "$runs/ab_flow_$arm" ] && { echo "$runs/ab_flow_$arm exists: remove it to start the A/B afresh"; exit 1; }
    OMP_NUM_THREADS=1 nohup dashtok train configs/flow_small.toml --set "out=$runs/ab_flow_$arm" threads=1 \
        "steps=$steps" "flow.autocast=$arm" "data.manifests=[\"$corpus/train.jsonl\"]" \
        > "$runs/ab_flow_$arm.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done  # set -e: a failed arm stops here
python - "$runs" <<'PY'
import csv, sys
import numpy as np
runs = sys.argv[1]
loss = {arm: {int(r["step"]): float(r["flow/loss"]) for r in csv.DictReader(open(f"{runs}/ab_flow_{arm}/metrics.csv"))}
        for arm in ("fp32", "bf16")}
steps = sorted(set(loss["fp32"]) & set(loss["bf16"]))
d = np.array([loss["bf16"][s] - loss["fp32"][s] for s in steps])
last = [s for s in steps if s > steps[-1] // 2]
print(f"paired loss difference bf16 - fp32 over {len(steps)} logged steps: mean {d.mean():+.4f} "
      f"(sd {d.std():.4f}); second half: fp32 {np.mean([loss['fp32'][s] for s in last]):.4f}, "
      f"bf16 {np.mean([loss['bf16'][s] for s in last]):.4f}")
PY
OMP_NUM_THREADS=2 dashtok eval gen "$corpus" --system fp32 "$runs/ab_flow_fp32/generator.safetensors" default \
    --system bf16 "$runs/ab_flow_bf16/generator.safetensors" default --max-clips 64 -o "$runs/ab_flow_gen" -f
