#!/usr/bin/env bash
# The four short fine-tunes of the report, one after the other, each on one thread (about 4 min each).
set -euo pipefail
cd /work/main
PY=/work/main/.venv/bin/python
export OMP_NUM_THREADS=1
S=${STEPS:-250}
$PY /work/tone/train_fix.py A0_mel --steps $S
$PY /work/tone/train_fix.py A1_mel+stft4096 --steps $S --stft 4096,1024 1280,320
$PY /work/tone/train_fix.py A2_mel+phase8 --steps $S --phase-scale 8
$PY /work/tone/train_fix.py A3_mel+stft4096+phase8 --steps $S --stft 4096,1024 1280,320 --phase-scale 8
$PY /work/tone/train_fix.py A4_mel+complex15 --steps $S --complex-weight 15  # run separately after the four above
