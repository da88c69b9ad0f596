"""Carry a tokenizer run to another machine: pack its latest checkpoint's weights, restore a resumable run folder.

    python records/long_run/state.py pack runs/tokenizer_long_mel records/long_run/state.safetensors
    python records/long_run/state.py restore configs/tokenizer_long_mel.toml records/long_run/state.safetensors

``pack`` keeps the moving average of the trained weights (the raw weights instead where the run keeps no average)
and the discriminators, but neither the frozen encoder (it is rebuilt from the config's ``tokenizer.init`` and checked
against a checksum on restore), nor the raw weights beside their average, nor the AdamW moments: each would double
the file (33 MB for the 384-wide decoder). ``restore`` writes ``<out>/checkpoints/step-N/`` from it, the raw weights
starting from their average and the optimizers from empty states, so that ``dashtok train CONFIG`` continues at step N
with the same schedule and batches (they are a function of seed and step) while AdamW re-estimates its moments: the
continuation is not bit for bit the uninterrupted run. On the machine that still has the run folder, just run the
training command again: that resumes bit for bit.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dashtok.train.__main__ import parse_set
from dashtok.train.config import TrainConfig
from dashtok.train.discriminators import Discriminators
from dashtok.train.run import Run
from dashtok.train.tokenizer_stage import build_tokenizer

FROZEN = "encoder."


def checksum(tensors: dict[str, torch.Tensor]) -> float:
    return float(sum(v.double().sum() * (i + 1) for i, (_, v) in enumerate(sorted(tensors.items()))))


def pack(run_dir: Path, out: Path) -> int:
    run = Run(run_dir)
    latest = run.latest()
    if latest is None:
        print(f"{run_dir}: no checkpoint to pack", file=sys.stderr)
        return 1
    state = torch.load(latest / "train_state.pt", weights_only=False)
    tensors: dict[str, torch.Tensor] = {}
    encoder = {k: v for k, v in load_file(str(latest / "model.safetensors")).items() if k.startswith(FROZEN)}
    weights = "ema" if (latest / "ema.safetensors").is_file() else "model"
    for name in (weights, "disc"):
        kept = {k: v for k, v in load_file(str(latest / f"{name}.safetensors")).items() if not k.startswith(FROZEN)}
        tensors.update({f"{'weights' if name == weights else name}.{k}": v for k, v in kept.items()})
    config = (run_dir / "invocations.jsonl").read_text().splitlines()[-1]
    save_file(tensors, str(out), metadata={"step": str(state["step"]), "run": str(run_dir), "weights": weights,
                                           "encoder_checksum": repr(checksum(encoder)),
                                           "resolved_config": json.dumps(json.loads(config)["resolved"])})
    print(f"{out}: step {state['step']}, {sum(v.numel() for v in tensors.values()) / 1e6:.2f} M values, "
          f"{out.stat().st_size / 1e6:.1f} MB")
    return 0


def restore(config: Path, packed: Path, force: bool, overrides: list[str]) -> int:
    cfg = TrainConfig.load(config, parse_set(overrides))
    with safe_open(str(packed), "pt") as f:
        meta = f.metadata() or {}
    step = int(meta["step"])
    run = Run(cfg.out)
    if run.latest() is not None and not force:
        print(f"{cfg.out} already has {run.latest()}: run the training command to resume it bit for bit "
              f"(--force to replace it with step {step})", file=sys.stderr)
        return 1
    torch.manual_seed(cfg.seed)
    weights = load_file(str(packed))
    model = build_tokenizer(cfg)  # the frozen encoder from tokenizer.init
    encoder = {k: v for k, v in model.state_dict().items() if k.startswith(FROZEN)}
    if repr(checksum(encoder)) != meta["encoder_checksum"]:
        print(f"{packed}: the run's frozen encoder is not the one {cfg.tokenizer.init} gives", file=sys.stderr)
        return 1
    t = cfg.tokenizer
    disc = Discriminators(period_channels=t.disc_period_channels, complex_spectra=t.disc_complex)
    frozen = {k: v for k, v in model.state_dict().items() if k.startswith(FROZEN)}
    model.load_state_dict({**frozen, **{k.removeprefix("weights."): v for k, v in weights.items()
                                         if k.startswith("weights.")}}, strict=True)
    disc.load_state_dict({k.removeprefix("disc."): v for k, v in weights.items() if k.startswith("disc.")},
                         strict=True)
    modules: dict[str, torch.nn.Module] = {"model": model, "disc": disc}
    if t.ema_decay:
        modules["ema"] = copy.deepcopy(model)  # the average goes on from itself, the raw weights from it too
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt_g = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(0.8, 0.9), weight_decay=cfg.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=t.disc_lr, betas=(0.8, 0.9), weight_decay=cfg.weight_decay)
    state = {"opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "step": step,
             "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}, "rank_checksums": [],
             "restored_from": str(packed), "optimizer": "re-warmed (empty AdamW state)"}
    run.save(step, {name: m.state_dict() for name, m in modules.items()}, state)
    Path(cfg.out, "restored.json").write_text(json.dumps({"step": step, "weights": str(packed)}) + "\n")
    print(f"{cfg.out}: checkpoint step {step} restored; now run: dashtok train {config}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("run_dir", type=Path)
    p.add_argument("out", type=Path)
    r = sub.add_parser("restore")
    r.add_argument("config", type=Path)
    r.add_argument("packed", type=Path)
    r.add_argument("--force", action="store_true")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="the run's overrides, as dashtok train")
    args = parser.parse_args()
    if args.command == "pack":
        return pack(args.run_dir, args.out)
    return restore(args.config, args.packed, args.force, args.set)


if __name__ == "__main__":
    raise SystemExit(main())
