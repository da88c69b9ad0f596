"""A tokenizer run's progress as a usable model, and the way back: ``dashtok train CONFIG --pack OUT`` and
``dashtok train CONFIG --resume-from FILE``.

``pack`` writes the run's latest checkpoint as a tokenizer file that every command takes: the moving average of the
trained weights (the raw weights where the run keeps no average), a training record naming the run, its step and its
resolved config; its latent statistics stay the neutral 0 / 1 unless ``stats`` computes them over the run's training
clips as the run's own export does at its end (a file generators and enhancers can train on: the bundled default is
one). Once the discriminators have trained (step > ``gan_start``) their weights go beside it (``disc_path``) or to
``disc_out``. Neither the raw weights beside their average nor the AdamW moments are kept: each would add the
decoder's size again.

``restore`` writes ``<out>/checkpoints/step-N/`` from such a file: the raw weights start from their average, the
discriminators from their file (of the same step; absent if they had not trained: then from their seeded
initialisation) and the optimizers from empty states, after checking that the file's frozen encoder is the one the
config's ``tokenizer.init`` gives. Training then continues at step N with the same schedule and batches (a function
of seed and step) while AdamW re-estimates its moments: not bit for bit the uninterrupted run. On the machine that
still has the run folder, running the training command again resumes bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dashtok.tokenizer import Tokenizer
from dashtok.train.config import TrainConfig
from dashtok.train.run import EMA, Run, config_dict
from dashtok.train.tokenizer_stage import (
    build_discriminators,
    build_optimizers,
    build_tokenizer,
    feature_cache,
    freeze_what_stays,
    load_across_heads,
    set_latent_statistics,
)

FROZEN = "encoder."


class StateError(ValueError):
    """A run that cannot be packed, or a file it cannot be restored from; the message says which and why."""


def disc_path(packed: Path) -> Path:
    """Where the discriminators of a packed tokenizer file go by default: beside it, ``*.disc.safetensors``."""
    return packed.with_name(packed.name.removesuffix(".safetensors") + ".disc.safetensors")


def trained_with(run_folder: Path) -> dict[str, Any] | None:
    """The resolved config of the run's latest start (``invocations.jsonl``): what trained the weights being packed,
    which the command that packs them need not repeat (its loss weights, a frozen injection, ...). None if unknown."""
    try:
        lines = (run_folder / "invocations.jsonl").read_text().splitlines()
        resolved = json.loads(lines[-1])["resolved"] if lines else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return resolved if isinstance(resolved, dict) else None


def pack(cfg: TrainConfig, out: Path, stats: bool = False, disc_out: Path | None = None) -> str:
    """The run's latest checkpoint -> tokenizer file ``out`` (+ its discriminators); returns a summary line."""
    if cfg.stage != "tokenizer":
        raise StateError(f"--pack and --resume-from are for the tokenizer stage, not {cfg.stage!r}")
    latest = Run(cfg.out).latest() if (Path(cfg.out) / "checkpoints").is_dir() else None
    if latest is None:
        raise StateError(f"{cfg.out}: no checkpoint to pack")
    trained = trained_with(Path(cfg.out)) or config_dict(cfg)
    if stats and (cfg.tokenizer.freeze_injection or trained.get("tokenizer", {}).get("freeze_injection")):
        raise StateError(f"--stats: the injection of {cfg.out} is frozen, so its latents and their statistics are "
                         f"the starting model's, which the packed file keeps")
    step = int(torch.load(latest / "train_state.pt", weights_only=False)["step"])
    weights = "ema" if (latest / "ema.safetensors").is_file() else "model"
    model = build_tokenizer(cfg)
    model.load_state_dict(load_file(str(latest / f"{weights}.safetensors")), strict=True)
    record = {"trained": True, "stage": "tokenizer", "steps": step, "seed": cfg.seed,
              "weights": "exponential moving average" if weights == "ema" else "last step",
              "intermediate": f"step {step} of the {cfg.steps}-step run {cfg.out}", "config": trained}
    if stats:  # as the run's own export at its end: over the training clips the run caches
        cache = feature_cache(model, cfg)
        set_latent_statistics(model, cache)  # level 0 only
        record["latent_statistics"] = f"{len(cache.frames)} training clips, {cache.hours:.2f} h"
    model.save(out, training=record)
    line = f"{out}: step {step} ({weights} weights), {out.stat().st_size / 1e6:.1f} MB"
    if step > cfg.tokenizer.gan_start:
        disc_out = disc_out or disc_path(out)
        save_file(load_file(str(latest / "disc.safetensors")), str(disc_out), metadata={"step": str(step)})
        line += f"; discriminators: {disc_out} ({disc_out.stat().st_size / 1e6:.1f} MB)"
    return line


def restore(cfg: TrainConfig, packed: Path, force: bool = False, disc_in: Path | None = None) -> str:
    """Run folder ``cfg.out`` at the step of the packed tokenizer file ``packed``; returns a summary line."""
    if cfg.stage != "tokenizer":
        raise StateError(f"--pack and --resume-from are for the tokenizer stage, not {cfg.stage!r}")
    shipped = Tokenizer.load(packed)
    if "steps" not in shipped.training_record:
        raise StateError(f"{packed}: its training record names no step (not written by --pack or a finished run)")
    step = int(shipped.training_record["steps"])
    run = Run(cfg.out)
    if run.latest() is not None and not force:
        raise StateError(f"{cfg.out} already has {run.latest()}: run the training command without --resume-from to "
                         f"continue it bit for bit (--force replaces it with step {step})")
    torch.manual_seed(cfg.seed)  # as the run itself: the model, then the discriminators
    t = cfg.tokenizer
    model = freeze_what_stays(build_tokenizer(cfg), t)
    disc = build_discriminators(t)
    state = shipped.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith(FROZEN) and not torch.equal(value, state[key]):
            raise StateError(f"{packed}: its frozen encoder differs from the one {t.init} gives ({key})")
    # the latent statistics are measured again at the run's end, unless its injection is frozen: then they are
    # the packed file's, as its latents are
    fresh = {} if t.freeze_injection else {k: v for k, v in model.state_dict().items() if k.startswith("latent_")}
    if t.freeze_injection and not state["latent_mean"].any() and bool((state["latent_std"] == 1).all()):
        raise StateError(f"{packed}: its latent statistics were never measured (packed without --stats), and a "
                         f"frozen injection keeps them: pack the run it comes from with --stats first")
    load_across_heads(model, state | fresh, shipped.config.decoder.phase, str(packed))
    disc_in = disc_in or disc_path(packed)
    if disc_in.is_file():
        with safe_open(str(disc_in), "pt") as f:
            disc_step = (f.metadata() or {}).get("step")
        if disc_step != str(step):
            raise StateError(f"{disc_in}: discriminators of step {disc_step}, but {packed} is of step {step}")
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
    return f"{cfg.out}: checkpoint step {step} restored from {packed}"
