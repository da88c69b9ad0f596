"""Rebuild a resumable MAE run folder from the committed weights (optimizer moments re-warm from zero).

    python records/encoder/restore_run.py configs/mae_small_long.toml records/encoder/mae_step.safetensors
    OMP_NUM_THREADS=1 nohup dashtok train configs/mae_small_long.toml > runs/mae_small_long.log 2>&1 &

The repository keeps the MAE weights (encoder + MAE decoder, ~15 MB) but not the AdamW moments (another ~29 MB). This
writes ``<out>/checkpoints/step-N/`` with those weights and a ``train_state.pt`` whose optimizer state is empty, so
``dashtok train`` resumes at step N with the same schedule and the same batches (they are a function of seed and step)
while Adam re-estimates its moments: the continuation is not bit for bit the uninterrupted run. On the machine that
still has the run folder, just run the training command again: that resumes bit for bit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from dashtok.config import EncoderConfig, FrontendConfig
from dashtok.train.config import TrainConfig
from dashtok.train.mae import MAE
from dashtok.train.run import Run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", help="the run's TOML (configs/mae_small_long.toml)")
    parser.add_argument("weights", help="committed MAE weights (mae_step.safetensors, metadata holds the step)")
    parser.add_argument("--force", action="store_true", help="even if the run folder already has a checkpoint")
    args = parser.parse_args()
    cfg = TrainConfig.load(args.config)
    with safe_open(args.weights, "pt") as f:
        meta = f.metadata() or {}
    step = int(meta["step"])
    run = Run(cfg.out)
    if run.latest() is not None and not args.force:
        print(f"{cfg.out} already has {run.latest()}: run the training command to resume it bit for bit "
              f"(--force to replace it with step {step})", file=sys.stderr)
        return 1
    torch.manual_seed(cfg.seed)
    model = MAE(FrontendConfig(), EncoderConfig.preset(cfg.mae.encoder_preset), cfg.mae)
    model.load_state_dict(load_file(args.weights), strict=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    state = {"opt": opt.state_dict(), "step": step,
             "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
             "rank_checksums": [], "restored_from": args.weights, "optimizer": "re-warmed (empty AdamW state)"}
    run.save(step, {"mae": model.state_dict()}, state)
    Path(cfg.out, "restored.json").write_text(json.dumps({"step": step, "weights": args.weights, **meta}) + "\n")
    print(f"{cfg.out}: checkpoint step {step} restored; now run: dashtok train {args.config}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
