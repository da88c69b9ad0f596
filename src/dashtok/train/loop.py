"""Explicit training loops for both stages: resumable after a kill at any moment, single process or DDP.

A run folder holds ``config.toml``, ``metrics.csv``/``eval.csv``, ``samples/`` (reconstructions and spectrograms)
and ``checkpoints/step-N/`` (weights in safetensors, optimizer/step/RNG in ``train_state.pt``), each written to a
temporary folder and renamed into place, with ``checkpoints/latest`` naming the newest complete one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from dashtok import metrics
from dashtok.checkpoint import (
    FORMAT,
    load_encoder,
    read_metadata,
    save_encoder,
    tokenizer_from_dasheng,
    tokenizer_with_encoder,
)
from dashtok.config import DecoderConfig, EncoderConfig, FrontendConfig
from dashtok.precision import autocast_for
from dashtok.tokenizer import Features, Tokenizer
from dashtok.train.config import TokenizerStageConfig, TrainConfig
from dashtok.train.data import SAMPLE_RATE, AudioBank, batch_generator
from dashtok.train.discriminators import Discriminators, frozen, windows
from dashtok.train.losses import disc_hinge, feature_matching, gen_hinge, mel_loss
from dashtok.train.mae import MAE


class Run:
    """The output folder of one run; only rank 0 writes."""

    def __init__(self, out: str | Path, rank: int = 0) -> None:
        self.out = Path(out)
        self.rank = rank
        self.ckpts = self.out / "checkpoints"
        if rank == 0:
            self.ckpts.mkdir(parents=True, exist_ok=True)

    def latest(self) -> Path | None:
        pointer = self.ckpts / "latest"
        if not pointer.is_file():
            return None
        path = self.ckpts / pointer.read_text().strip()
        return path if path.is_dir() else None

    def save(self, step: int, tensors: dict[str, dict[str, torch.Tensor]], state: dict[str, Any],
             keep: int = 2) -> None:
        if self.rank != 0:
            return
        final = self.ckpts / f"step-{step:07d}"
        tmp = self.ckpts / f".tmp-step-{step:07d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, sd in tensors.items():
            save_file({k: v.detach().cpu().contiguous() for k, v in sd.items()}, str(tmp / f"{name}.safetensors"))
        torch.save(state, tmp / "train_state.pt")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        pointer_tmp = self.ckpts / ".latest.partial"
        pointer_tmp.write_text(final.name)
        os.replace(pointer_tmp, self.ckpts / "latest")
        for old in sorted(self.ckpts.glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def resume(self, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], label: str) -> int:
        """Load the newest checkpoint into ``modules`` and ``optimizers`` (and the RNG); the step to continue from."""
        latest = self.latest()
        if latest is None:
            return 0
        for name, module in modules.items():
            module.load_state_dict(load_file(str(latest / f"{name}.safetensors")), strict=True)
        state = torch.load(latest / "train_state.pt", weights_only=False)
        for name, opt in optimizers.items():
            opt.load_state_dict(state[name])
        _set_rng_state(state["rng"])
        _say(self.rank, f"{label}: resumed from {latest} at step {state['step']}")
        return int(state["step"])

    def checkpoint(self, step: int, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                   world: int, trained: nn.Module) -> None:
        """Save weights, optimizers, step and RNG; with DDP, first check that every rank holds the same weights."""
        sums = rank_checksums(trained, world)
        self.save(step, {name: m.state_dict() for name, m in modules.items()},
                  {**{name: o.state_dict() for name, o in optimizers.items()}, "step": step, "rng": _rng_state(),
                   "rank_checksums": sums})

    def log(self, row: dict[str, Any], name: str = "metrics.csv") -> None:
        if self.rank != 0:
            return
        path = self.out / name
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module, cfg: TrainConfig,
                   step: int) -> float:
    """The update of the single-optimizer stages (MAE, flow, enhance): scheduled lr, backward, clipping, step.
    Returns the gradient norm before clipping."""
    for group in opt.param_groups:
        group["lr"] = cfg.lr * lr_factor(step, cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
    opt.step()
    return float(grad_norm)


def log_progress(run: Run, cfg: TrainConfig, step: int, t0: float, label: str, key: str, loss: torch.Tensor,
                 grad_norm: float, lr: float) -> None:
    """Every ``log_every`` steps (and at the last): a metrics.csv row and one console line."""
    if step % cfg.log_every and step != cfg.steps:
        return
    value = float(loss.detach())
    run.log({"step": step, "seconds": round(time.perf_counter() - t0, 1), key: value, "grad_norm": grad_norm,
             "lr": lr})
    _say(run.rank, f"{label}: step {step} {key} {value:.4f}")


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10 %."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def setup_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if world > 1 else (0, 1)


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
        return torch.device("cuda")
    return torch.device("cpu")


def _wrap(module: nn.Module, world: int) -> nn.Module:
    return nn.parallel.DistributedDataParallel(module) if world > 1 else module


def rank_checksums(module: nn.Module, world: int) -> list[float]:
    """A checksum of the trainable weights from every rank; DDP must keep them identical, so we check it."""
    params = [p.detach().double().flatten() for p in module.parameters() if p.requires_grad]
    mine = torch.cat(params).mul(torch.arange(1, sum(p.numel() for p in params) + 1, dtype=torch.float64) % 7 + 1)
    value = torch.tensor([float(mine.sum())], dtype=torch.float64)
    if world == 1:
        return [float(value)]
    gathered = [torch.zeros_like(value) for _ in range(world)]
    dist.all_gather(gathered, value)
    sums = [float(g) for g in gathered]
    if len(set(sums)) != 1:
        raise RuntimeError(f"DDP ranks diverged: weight checksums {sums}")
    return sums


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])


# ---- stage 1: MAE ----------------------------------------------------------------------------------------------
def run_mae(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Path:
    torch.manual_seed(cfg.seed)
    device = _device(rank)
    run = Run(cfg.out, rank)
    model = MAE(FrontendConfig(), EncoderConfig.preset(cfg.mae.encoder_preset), cfg.mae).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    step = run.resume({"mae": model}, {"opt": opt}, "mae")
    bank = AudioBank.from_config(cfg.data)
    _say(rank, f"mae: {len(bank)} clips, {bank.hours:.2f} h; encoder {cfg.mae.encoder_preset}; "
               f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    ddp = _wrap(model, world)
    n = int(cfg.mae.segment_seconds * SAMPLE_RATE)
    per_rank = cfg.batch_size // world
    t0 = time.perf_counter()
    while step < cfg.steps:
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
                  "config": _config_dict(cfg)}
        save_encoder(model.encoder, run.out / "encoder.safetensors", training=record)
    return run.out / "encoder.safetensors"


# ---- stage 2: tokenizer ----------------------------------------------------------------------------------------
class FeatureCache:
    """Frozen-encoder outputs (and injection inputs) of every training clip, computed once: they never change."""

    def __init__(self, model: Tokenizer, bank: AudioBank, min_frames: int) -> None:
        self.semantic: list[torch.Tensor] = []
        self.patches: list[torch.Tensor] = []
        self.audio: list[torch.Tensor] = []
        hop = model.hop_length
        with torch.no_grad():
            for i in range(len(bank)):
                x = torch.from_numpy(bank.audio(i))
                need = min_frames * hop + model.config.min_num_samples
                if len(x) < need:  # short clips (drum hits) are padded with silence to one training crop
                    x = torch.nn.functional.pad(x, (0, need - len(x)))
                feats = model.features(x[None].to(model.device))
                n = int(feats.lengths[0])
                self.semantic.append(feats.semantic[0, :n].cpu())
                self.patches.append(feats.patches[0, :n].cpu())
                # n frames can span up to 3 mel hops past the audio's end (1 + L // 160 frames): pad with zeros
                self.audio.append(torch.nn.functional.pad(x, (0, max(0, n * hop - len(x))))[: n * hop])
        self.frames = np.array([len(s) for s in self.semantic])

    def batch(self, gen: torch.Generator, size: int, frames: int, hop: int) -> tuple[Features, torch.Tensor]:
        weights = torch.from_numpy(self.frames.astype(np.float64))
        idx = torch.multinomial(weights, size, replacement=True, generator=gen).tolist()
        sem, pat, aud = [], [], []
        for i in idx:
            start = int(torch.randint(0, int(self.frames[i]) - frames + 1, (), generator=gen))
            sem.append(self.semantic[i][start : start + frames])
            pat.append(self.patches[i][start : start + frames])
            aud.append(self.audio[i][start * hop : (start + frames) * hop])
        lengths = torch.full((size,), frames, dtype=torch.long)
        return Features(torch.stack(sem), torch.stack(pat), lengths), torch.stack(aud)


class Generator(nn.Module):
    """The trainable path (injection -> decoder -> head) as one module, so DDP can wrap it.

    ``autocast`` ("fp32" | "bf16") applies to the decoder blocks only: the injection stays float32 (it makes the
    latents, which the shipped model computes in float32) and the head's spectrum and iSTFT always are.
    """

    def __init__(self, model: Tokenizer, autocast: str = "fp32") -> None:
        super().__init__()
        self.model = model
        self.autocast = autocast

    def forward(self, semantic: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        lengths = torch.full((semantic.shape[0],), semantic.shape[1], dtype=torch.long, device=semantic.device)
        latents = self.model.inject(Features(semantic, patches, lengths))
        with autocast_for(self.autocast, latents.device):
            return self.model.synthesize(latents)  # (B, T) float32


def disc_crop(gen: torch.Generator, shape: torch.Size, t: TokenizerStageConfig) -> torch.Tensor | None:
    """(B, L) sample indices of the random window of each segment that the discriminators see, drawn from the
    step's generator (so a resumed run draws the same); None when ``t.disc_crop_seconds`` covers the segment."""
    b, n = shape
    length = round(t.disc_crop_seconds * SAMPLE_RATE)
    if length == 0 or length >= n:
        return None
    starts = torch.randint(0, n - length + 1, (b, 1), generator=gen)
    return starts + torch.arange(length)


def train_step(gen_net: nn.Module, disc: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               feats: Features, real: torch.Tensor, t: TokenizerStageConfig, use_gan: bool, grad_clip: float,
               crop: torch.Tensor | None = None) -> dict[str, float]:
    """One step: the discriminators first (on detached fakes), then the generator. Returns the logged metrics.

    real: (B, T) audio; crop: (B, L) indices of the window the discriminators see (:func:`disc_crop`; None: all).
    ``t.loss_weights`` are keyed by the logged metric names; ``t`` also holds the cost levers (issue 13).
    """
    fake = gen_net(feats.semantic, feats.patches)  # (B, T) float32
    nan = float("nan")  # GAN metrics before the discriminators join: logged as empty, columns stay aligned
    out: dict[str, float] = {"adv/disc": nan, "adv/gen": nan, "adv/feat": nan}
    losses = {"mel/l1": mel_loss(real, fake)}  # the whole segment, float32
    if use_gan:
        real_w, fake_w = windows(real, crop), windows(fake, crop)  # (B, L)
        with autocast_for(t.autocast, real.device):
            real_out = disc(real_w)
            d_loss = disc_hinge(real_out, disc(fake_w.detach()))
        out["adv/disc"] = _update(opt_d, d_loss, disc, grad_clip)[0]
        # The generator pass calls the bare module: its discriminator gradients (if any) are never synchronised.
        plain = disc.module if isinstance(disc, nn.parallel.DistributedDataParallel) else disc
        with autocast_for(t.autocast, real.device), frozen(plain, t.disc_frozen_in_gen):
            if not t.disc_reuse_real:  # else the real features of the D step (before its update) are reused
                with torch.no_grad():
                    real_out = plain(real_w)
            fake_out = plain(fake_w)
        losses["adv/gen"] = gen_hinge(fake_out)
        losses["adv/feat"] = feature_matching(real_out, fake_out)
    total: torch.Tensor = sum(t.loss_weights[k] * v for k, v in losses.items())  # type: ignore[assignment]
    out["total"], out["grad_norm"] = _update(opt_g, total, gen_net, grad_clip)
    out.update({k: float(v.detach()) for k, v in losses.items()})
    return out


def _update(opt: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module, grad_clip: float) -> tuple[float, float]:
    """Backward, clip, step; (loss, gradient norm before clipping)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    opt.step()
    return float(loss.detach()), float(grad_norm)


def build_tokenizer(cfg: TrainConfig) -> Tokenizer:
    t = cfg.tokenizer
    decoder = DecoderConfig.preset(t.decoder_preset)
    init = Path(t.init)
    if init.suffix == ".pt":
        return tokenizer_from_dasheng(init, decoder=decoder, injection=t.injection, name=t.name)
    source = init / "encoder.safetensors" if init.is_dir() else init
    if read_metadata(source).get("format") == FORMAT:  # a tokenizer checkpoint
        donor = Tokenizer.load(source)
        model = tokenizer_with_encoder(donor.encoder, decoder, t.injection, t.name)
        if t.warm_start:
            own = model.state_dict()
            own.update({k: v for k, v in donor.state_dict().items() if not k.startswith("encoder.")})
            model.load_state_dict(own, strict=True)
        return model
    if t.warm_start:
        raise ValueError("tokenizer.warm_start needs tokenizer.init to be a dashtok tokenizer checkpoint")
    return tokenizer_with_encoder(load_encoder(source), decoder, t.injection, t.name)


def evaluate(model: Tokenizer, bank: AudioBank, out_dir: Path | None = None) -> dict[str, float]:
    """Reconstruction measures on the validation clips (PESQ/STOI on speech clips only)."""
    model.eval()
    rows: dict[str, list[float]] = {"mel_distance": [], "si_sdr": [], "pesq_wb": [], "stoi": []}
    for i in range(len(bank)):
        x = bank.audio(i)
        if len(x) < model.config.min_num_samples:
            continue
        y = model.decode(model.encode(x).latents).audio[0].cpu().numpy()[: len(x)]
        x = x[: len(y)]
        rows["mel_distance"].append(float(metrics.mel_distance(x, y)[0]))
        rows["si_sdr"].append(float(metrics.si_sdr(x, y)[0]))
        if bank.domains[i] == "speech":
            for key, fn in (("pesq_wb", metrics.pesq_wb), ("stoi", metrics.stoi)):
                try:
                    value = fn(x, y, SAMPLE_RATE)
                except Exception:  # PESQ refuses some inputs (e.g. no utterance detected)
                    value = None
                if value is not None:
                    rows[key].append(value)
        if out_dir is not None and i < 3:
            _save_sample(out_dir, bank.names[i], x, y)
    model.train()
    return {k: round(float(np.mean(v)), 4) for k, v in rows.items() if v}


def _save_sample(out_dir: Path, name: str, x: np.ndarray, y: np.ndarray) -> None:
    from dashtok.audio_io import write_audio
    from dashtok.eval.plots import spectrograms

    stem = Path(name).name.replace(":", "_")
    write_audio(out_dir / f"{stem}.orig.wav", x, SAMPLE_RATE)
    write_audio(out_dir / f"{stem}.recon.wav", y, SAMPLE_RATE)
    spectrograms(out_dir / f"{stem}.png", x, y, stem)


def run_tokenizer(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Path:
    torch.manual_seed(cfg.seed)
    device = _device(rank)
    run = Run(cfg.out, rank)
    t = cfg.tokenizer
    model = build_tokenizer(cfg).to(device).train()
    disc = Discriminators().to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt_g = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(0.8, 0.9), weight_decay=cfg.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=t.disc_lr, betas=(0.8, 0.9), weight_decay=cfg.weight_decay)
    step = run.resume({"model": model, "disc": disc}, {"opt_g": opt_g, "opt_d": opt_d}, "tokenizer")
    bank = AudioBank.from_config(cfg.data)
    valid = AudioBank.from_config(cfg.data, valid=True) if cfg.data.valid_manifests else None
    t_cache = time.perf_counter()
    cache = FeatureCache(model, bank, t.segment_frames)
    n_train = sum(p.numel() for p in trainable)
    _say(rank, f"tokenizer: {len(bank)} clips, {bank.hours:.2f} h, features cached in "
               f"{time.perf_counter() - t_cache:.0f} s; {n_train / 1e6:.2f} M trainable parameters "
               f"(injection {'on' if t.injection else 'off'})")
    gen_net, disc_net = _wrap(Generator(model, t.autocast), world), _wrap(disc, world)
    per_rank = cfg.batch_size // world
    t0 = time.perf_counter()
    while step < cfg.steps:
        gen = batch_generator(cfg.seed, step, rank)
        feats, real = cache.batch(gen, per_rank, t.segment_frames, model.hop_length)
        crop = disc_crop(gen, real.shape, t)
        feats = Features(feats.semantic.to(device), feats.patches.to(device), feats.lengths.to(device))
        for opt, base in ((opt_g, cfg.lr), (opt_d, t.disc_lr)):
            for group in opt.param_groups:
                group["lr"] = base * lr_factor(step, cfg)
        logged = train_step(gen_net, disc_net, opt_g, opt_d, feats, real.to(device), t,
                            use_gan=step >= t.gan_start, grad_clip=cfg.grad_clip, crop=crop)
        step += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            run.log({"step": step, "seconds": round(time.perf_counter() - t0, 1), "lr": opt_g.param_groups[0]["lr"],
                     **{k: round(v, 5) for k, v in sorted(logged.items())}})
            _say(rank, f"tokenizer: step {step} " + " ".join(f"{k} {v:.4f}" for k, v in sorted(logged.items())))
        if step % cfg.save_every == 0 or step == cfg.steps:
            run.checkpoint(step, {"model": model, "disc": disc}, {"opt_g": opt_g, "opt_d": opt_d}, world, model)
        if rank == 0 and valid is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            scores = evaluate(model, valid, run.out / "samples" / f"step-{step:07d}")
            run.log({"step": step, **scores}, name="eval.csv")
            _say(rank, f"tokenizer: eval at step {step}: {scores}")
    final = run.out / "model.safetensors"
    if rank == 0:
        export(model, cache, cfg, final, bank.hours, valid)
    return final


def export(model: Tokenizer, cache: FeatureCache, cfg: TrainConfig, path: Path, hours: float,
           valid: AudioBank | None) -> None:
    """The shipped checkpoint: weights, per-channel latent statistics of the training data, and the record."""
    model.eval()
    with torch.no_grad():
        lat = torch.cat([model.inject(Features(s[None], p[None], torch.tensor([len(s)])))[0]
                         for s, p in zip(cache.semantic, cache.patches, strict=True)])
        model.latent_mean.copy_(lat.mean(0))
        model.latent_std.copy_(lat.std(0).clamp(min=1e-5))
    record = {"trained": True, "stage": "tokenizer", "steps": cfg.steps, "seed": cfg.seed,
              "data_hours": round(hours, 3), "command": " ".join(sys.argv), "config": _config_dict(cfg),
              "final_eval": evaluate(model, valid) if valid is not None else {}}
    model.save(path, training=record)


def _config_dict(cfg: TrainConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(cfg)))


def _say(rank: int, msg: str) -> None:
    if rank == 0:
        print(msg, flush=True)


def train(cfg: TrainConfig) -> Path:
    """Run the configured stage; under torchrun, every rank waits for the others before the process group closes."""
    rank, world = setup_distributed()
    out = _train_stage(cfg, rank, world)
    if world > 1 and dist.is_initialized():
        # rank 0 writes the final export after the last step; a rank that leaves gloo early aborts the others
        dist.barrier()
        dist.destroy_process_group()
    return out


def _train_stage(cfg: TrainConfig, rank: int, world: int) -> Path:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    if rank == 0:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    if cfg.stage == "mae":
        return run_mae(cfg, rank, world)
    if cfg.stage == "tokenizer":
        return run_tokenizer(cfg, rank, world)
    if cfg.stage == "vae":
        from dashtok.train.vae_stage import run_vae

        return run_vae(cfg, rank, world)
    if cfg.stage == "flow":
        from dashtok.train.flow_stage import run_flow

        return run_flow(cfg, rank, world)
    if cfg.stage == "enhance":
        from dashtok.train.enhance_stage import run_enhance

        return run_enhance(cfg, rank, world)
    raise ValueError(f"unknown stage {cfg.stage!r} (mae | tokenizer | vae | flow | enhance)")
