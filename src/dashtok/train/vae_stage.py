"""The mel-VAE baseline's training: reconstruction (the tokenizer stage's multi-resolution mel loss and weight) plus
a KL prior on the latents, on random crops of the same audio, with the same optimiser, schedule and batch."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from dashtok.baselines.vae import MelVAE, VAEConfig, kl_divergence
from dashtok.config import DecoderConfig
from dashtok.masking import lengths_to_mask
from dashtok.train.config import TrainConfig
from dashtok.train.data import AudioBank, batch_generator
from dashtok.train.losses import mel_loss
from dashtok.train.run import Run, config_dict, device_for, evaluate, optimizer_step, say, wrap_ddp


def crops(bank: AudioBank, gen: torch.Generator, size: int, samples: int) -> torch.Tensor:
    """(size, samples) random crops, clips picked in proportion to their length; short clips padded with zeros."""
    out = torch.zeros(size, samples)
    for j in range(size):
        clip = bank.audio(bank.pick(gen))
        start = int(torch.randint(0, max(1, len(clip) - samples + 1), (), generator=gen))
        piece = torch.from_numpy(clip[start : start + samples])
        out[j, : len(piece)] = piece
    return out


def run_vae(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Path:
    torch.manual_seed(cfg.seed)
    device = device_for(rank)
    run = Run(cfg.out, rank)
    v = cfg.vae
    model = MelVAE(VAEConfig(name=v.name, latent_dim=v.latent_dim, encoder_dim=v.encoder_dim,
                             encoder_blocks=v.encoder_blocks, decoder=DecoderConfig.preset(v.decoder_preset)))
    model = model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.8, 0.9), weight_decay=cfg.weight_decay)
    step = run.resume({"model": model}, {"opt": opt}, "vae")
    bank = AudioBank.from_config(cfg.data)
    valid = AudioBank.from_config(cfg.data, valid=True) if cfg.data.valid_manifests else None
    say(rank, f"vae: {len(bank)} clips, {bank.hours:.2f} h; "
               f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    net = wrap_ddp(model, world)
    samples = v.segment_frames * model.hop_length
    per_rank = cfg.batch_size // world
    t0 = time.perf_counter()
    while step < cfg.steps:
        if stopped := run.out_of_time(cfg, t0, step, {"model": model}, {"opt": opt}, world, model, "vae"):
            return stopped
        gen = batch_generator(cfg.seed, step, rank)
        real = crops(bank, gen, per_rank, samples).to(device)
        mean, logvar, frames = model.posterior_of(real)
        noise = torch.randn(mean.shape, generator=gen).to(device)
        fake = model.synthesize(mean + (0.5 * logvar).exp() * noise)[:, :samples]
        mask = lengths_to_mask(frames, mean.shape[1]).to(mean.dtype)
        rec, kl = mel_loss(real, fake), kl_divergence(mean, logvar, mask)
        loss = v.mel_weight * rec + v.kl_weight * kl
        grad_norm = optimizer_step(opt, loss, net, cfg, step)
        step += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            row = {"step": step, "seconds": round(time.perf_counter() - t0, 1),
                   "mel/l1": round(float(rec.detach()), 5), "kl": round(float(kl.detach()), 3),
                   "total": round(float(loss.detach()), 5), "grad_norm": round(grad_norm, 4),
                   "lr": opt.param_groups[0]["lr"]}
            run.log(row)
            say(rank, f"vae: step {step} mel/l1 {row['mel/l1']:.4f} kl {row['kl']:.2f} total {row['total']:.4f}")
        if step % cfg.save_every == 0 or step == cfg.steps:
            run.checkpoint(step, {"model": model}, {"opt": opt}, world, model)
        if rank == 0 and valid is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            scores = evaluate(model, valid, run.out / "samples" / f"step-{step:07d}")  # type: ignore[arg-type]
            run.log({"step": step, **scores}, name="eval.csv")
            say(rank, f"vae: eval at step {step}: {scores}")
    final = run.out / "vae.safetensors"
    if rank == 0:
        model.eval()
        with torch.no_grad():  # per-channel statistics of the training latents, for generators
            lat = torch.cat([model.encode(bank.audio(i)).latents[0] for i in range(len(bank))
                             if len(bank.audio(i)) >= model.config.min_num_samples])
            model.latent_mean.copy_(lat.mean(0))
            model.latent_std.copy_(lat.std(0).clamp(min=1e-5))
        model.save(final, training={"trained": True, "stage": "vae", "steps": cfg.steps, "seed": cfg.seed,
                                    "data_hours": round(bank.hours, 3), "config": config_dict(cfg),
                                    "final_eval": evaluate(model, valid) if valid is not None else {}})  # type: ignore[arg-type]
    return final


