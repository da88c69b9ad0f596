"""Ship a tokenizer run's progress as a usable model, and carry the run to another machine.

    python records/long_run/state.py pack configs/tokenizer_long_mel.toml records/long_run/mel_stage.safetensors
    python records/long_run/state.py restore configs/tokenizer_long_mel.toml records/long_run/mel_stage.safetensors

``pack`` writes the run's latest checkpoint as a tokenizer file that every command takes (``dashtok eval recon
--checkpoint OUT``): the moving average of the trained weights (the raw weights where the run keeps no average), the
training record naming the run, its step and its resolved config; its latent statistics stay the neutral 0 / 1 unless
``--stats`` computes them over the run's training clips as the run's own export does at its end (a file that
generators and enhancers can train on: the bundled default is one). Once the discriminators have trained (step >
``gan_start``) their weights go beside it, ``OUT`` with ``.disc.safetensors`` for ``.safetensors``, or to ``--disc``.
Neither the raw weights beside their average nor the AdamW moments are kept: each would add the decoder's size again.

``restore`` writes ``<out>/checkpoints/step-N/`` from such a file, the raw weights starting from their average, the
discriminators from their file (beside it or ``--disc``; it must be of the same step, or absent if they had not
trained: then from their seeded initialisation) and the optimizers from empty states, after checking that the
file's frozen encoder is the one the config's ``tokenizer.init`` gives. Then
``dashtok train CONFIG`` continues at step N with the same schedule and batches (a function of seed and step) while
AdamW re-estimates its moments: not bit for bit the uninterrupted run. On the machine that still has the run folder,
just run the training command again: that resumes bit for bit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dashtok import Tokenizer
from dashtok.train.__main__ import parse_set
from dashtok.train.config import TrainConfig
from dashtok.train.data import AudioBank
from dashtok.train.run import EMA, Run, config_dict
from dashtok.train.tokenizer_stage import (
    FeatureCache,
    build_discriminators,
    build_optimizers,
    build_tokenizer,
    set_latent_statistics,
)

FROZEN = "encoder."


def disc_path(packed: Path) -> Path:
    return packed.with_name(packed.name.removesuffix(".safetensors") + ".disc.safetensors")


def pack(cfg: TrainConfig, out: Path, stats: bool, disc_out: Path | None) -> int:
    latest = Run(cfg.out).latest()
    if latest is None:
        print(f"{cfg.out}: no checkpoint to pack", file=sys.stderr)
        return 1
    step = int(torch.load(latest / "train_state.pt", weights_only=False)["step"])
    weights = "ema" if (latest / "ema.safetensors").is_file() else "model"
    model = build_tokenizer(cfg)
    model.load_state_dict(load_file(str(latest / f"{weights}.safetensors")), strict=True)
    record = {"trained": True, "stage": "tokenizer", "steps": step, "seed": cfg.seed,
              "weights": "exponential moving average" if weights == "ema" else "last step",
              "intermediate": f"step {step} of the {cfg.steps}-step run {cfg.out}", "config": config_dict(cfg)}
    if stats:  # as the run's own export at its end: over the training clips the run caches
        bank = AudioBank.from_config(cfg.data)
        set_latent_statistics(model, FeatureCache(model, bank, cfg.tokenizer.segment_frames))  # level 0 only
        record["latent_statistics"] = f"{len(bank)} training clips, {bank.hours:.2f} h"
    model.save(out, training=record)
    line = f"{out}: step {step} ({weights} weights), {out.stat().st_size / 1e6:.1f} MB"
    if step > cfg.tokenizer.gan_start:
        disc_out = disc_out or disc_path(out)
        save_file(load_file(str(latest / "disc.safetensors")), str(disc_out), metadata={"step": str(step)})
        line += f"; discriminators: {disc_out} ({disc_out.stat().st_size / 1e6:.1f} MB)"
    print(line)
    return 0


def restore(cfg: TrainConfig, packed: Path, force: bool, disc_in: Path | None) -> int:
    shipped = Tokenizer.load(packed)
    step = int(shipped.training_record["steps"])
    run = Run(cfg.out)
    if run.latest() is not None and not force:
        print(f"{cfg.out} already has {run.latest()}: run the training command to resume it bit for bit "
              f"(--force to replace it with step {step})", file=sys.stderr)
        return 1
    torch.manual_seed(cfg.seed)  # as the run itself: the model, then the discriminators
    model = build_tokenizer(cfg)
    t = cfg.tokenizer
    disc = build_discriminators(t)
    state = shipped.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith(FROZEN) and not torch.equal(value, state[key]):
            print(f"{packed}: its frozen encoder differs from the one {t.init} gives ({key})", file=sys.stderr)
            return 1
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("latent_")}
                          | {k: v for k, v in model.state_dict().items() if k.startswith("latent_")}, strict=True)
    disc_in = disc_in or disc_path(packed)
    if disc_in.is_file():
        with safe_open(str(disc_in), "pt") as f:
            disc_step = (f.metadata() or {}).get("step")
        if disc_step != str(step):
            print(f"{disc_in}: discriminators of step {disc_step}, but {packed} is of step {step}", file=sys.stderr)
            return 1
        disc.load_state_dict(load_file(str(disc_in)), strict=True)
    modules: dict[str, torch.nn.Module] = {"model": model, "disc": disc}
    if t.ema_decay:
        modules["ema"] = EMA(model, t.ema_decay).module  # the average goes on from itself, the raw weights from it too
    opt_g, opt_d = build_optimizers(model, disc, cfg)
    train_state = {"opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "step": step,
                   "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}, "rank_checksums": [],
                   "restored_from": str(packed), "optimizer": "re-warmed (empty AdamW state)"}
    run.save(step, {name: m.state_dict() for name, m in modules.items()}, train_state)
    Path(cfg.out, "restored.json").write_text(json.dumps({"step": step, "weights": str(packed)}) + "\n")
    print(f"{cfg.out}: checkpoint step {step} restored; now run the training command")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("pack", "restore"))
    parser.add_argument("config", help="the run's TOML")
    parser.add_argument("file", type=Path, help="the tokenizer file to write (pack) or read (restore)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="the run's overrides")
    parser.add_argument("--force", action="store_true", help="restore over an existing checkpoint")
    parser.add_argument("--stats", action="store_true",
                        help="pack: compute the latent statistics over the run's training clips (as its final export "
                             "does), for a file that generators and enhancers train on")
    parser.add_argument("--disc", type=Path,
                        help="where the discriminators go (pack) or come from (restore); default: beside the file")
    args = parser.parse_args()
    cfg = TrainConfig.load(args.config, parse_set(args.set))
    if args.command == "pack":
        return pack(cfg, args.file, args.stats, args.disc)
    return restore(cfg, args.file, args.force, args.disc)


if __name__ == "__main__":
    raise SystemExit(main())
