"""Stage 1, ``mae``: masked-autoencoder pretraining of a small Dasheng encoder (skipped when you bring an upstream
one). Writes ``encoder.safetensors`` (upstream key names)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dashtok.checkpoint import save_encoder
from dashtok.config import EncoderConfig, FrontendConfig
from dashtok.train.config import TrainConfig
from dashtok.train.data import SAMPLE_RATE, AudioBank, batch_generator
from dashtok.train.mae import MAE
from dashtok.train.run import Run, config_dict, device_for, log_progress, optimizer_step, say, wrap_ddp


def run_mae(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Path:
    torch.manual_seed(cfg.seed)
    device = device_for(rank)
    run = Run(cfg.out, rank)
    model = MAE(FrontendConfig(), EncoderConfig.preset(cfg.mae.encoder_preset), cfg.mae).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    step = run.resume({"mae": model}, {"opt": opt}, "mae")
    bank = AudioBank.from_config(cfg.data)
    say(rank, f"mae: {len(bank)} clips, {bank.hours:.2f} h; encoder {cfg.mae.encoder_preset}; "
               f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    ddp = wrap_ddp(model, world)
    n = int(cfg.mae.segment_seconds * SAMPLE_RATE)
    per_rank = cfg.batch_size // world
    t0 = time.perf_counter()
    while step < cfg.steps:
        if stopped := run.out_of_time(cfg, t0, step, {"mae": model}, {"opt": opt}, world, model, "mae"):
            return stopped
        gen = batch_generator(cfg.seed, step, rank)
        wav = torch.from_numpy(np.stack([bank.concatenated(n, gen) for _ in range(per_rank)])).to(device)
        loss = ddp(wav, gen)
        grad_norm = optimizer_step(opt, loss, model, cfg, step)
        step += 1
        log_progress(run, cfg, step, t0, "mae", "mae/loss", loss, grad_norm, opt.param_groups[0]["lr"])
        if step % cfg.save_every == 0 or step == cfg.steps:
            run.checkpoint(step, {"mae": model}, {"opt": opt}, world, model)
    if rank == 0:
        record = {"stage": "mae", "steps": step, "seed": cfg.seed, "data_hours": round(bank.hours, 3),
                  "config": config_dict(cfg)}
        save_encoder(model.encoder, run.out / "encoder.safetensors", training=record)
    return run.out / "encoder.safetensors"
