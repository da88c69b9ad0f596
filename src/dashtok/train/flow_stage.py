"""Stage 3: text-to-audio flow matching on the latents of a frozen, trained tokenizer.

The latents of every captioned training clip (normalised per channel) are encoded once and held in memory, or read
crop by crop from latent shards made by ``dashtok encode --shards`` (``data.latent_shards``: no audio, no re-encoding,
no corpus in memory). Captions are embedded batch by batch. Batches are random crops of up to ``flow.max_seconds``,
padded with a frame mask; a fraction of captions is replaced by the null token so that one network gives both the
conditional and the unconditional field (guidance).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dashtok.audio_io import load_audio
from dashtok.baselines.vae import load_codec
from dashtok.codec import Codec
from dashtok.data.manifest import read_manifest
from dashtok.generate.flow import flow_loss
from dashtok.generate.model import TextToAudio
from dashtok.generate.text import TextEncoder
from dashtok.generate.tied import Tie
from dashtok.generate.velocity_net import VelocityNetConfig
from dashtok.masking import lengths_to_mask
from dashtok.precision import autocast_for
from dashtok.shards import LATENT_ID, read_sample, sample_refs, shard_paths
from dashtok.train.config import TrainConfig
from dashtok.train.data import batch_generator, weighted_crops
from dashtok.train.run import Run, device_for, log_progress, optimizer_step, resolve_autocast, say, wrap_ddp


class CaptionedLatents:
    """Normalised latents (N, D) and the caption of every captioned training clip of the manifests, encoded once and
    held in memory (small corpora; ``ShardedLatents`` reads an encoded corpus instead)."""

    def __init__(self, tokenizer: Codec, manifests: tuple[str, ...]) -> None:
        self.latents: list[torch.Tensor] = []
        self.captions: list[str] = []
        for m in manifests:
            root = Path(m).parent
            for c in read_manifest(m):
                if not c.caption:
                    continue
                x = load_audio(root / c.path, tokenizer.sample_rate)
                if len(x) < tokenizer.min_num_samples:
                    continue
                self.latents.append(tokenizer.normalize_latents(tokenizer.encode(x).latents[0]).cpu())
                self.captions.append(c.caption)
        if not self.latents:
            raise ValueError("no captioned training clips found in the manifests")
        self.frames = np.array([len(z) for z in self.latents])

    def crop(self, i: int, start: int, frames: int) -> torch.Tensor:
        return self.latents[i][start : start + frames]


class ShardedLatents:
    """The captioned samples of latent shards (``dashtok encode --shards``), read crop by crop from the tar files:
    memory holds a table of the samples (their place, length and caption), not their latents. Under DDP each rank
    reads its own shards (the k-th of every ``world``) and draws in proportion to length among them: the encoder's
    shards hold equal numbers of inputs (the last excepted), so each rank's share of the corpus is about equal."""

    def __init__(self, tokenizer: Codec, directories: tuple[str, ...], rank: int = 0, world: int = 1) -> None:
        # the ids hold the weights' hashes; a shard directory that records a latent id is checked by that alone
        # (the VAE baseline has none: its model id decides)
        tie = Tie.to(tokenizer)
        model = {"model_id": tie.tokenizer_id, LATENT_ID: tie.latent_id, "kind": "latents"}
        shards = [p for d in directories for p in shard_paths(d, model)]
        mine = shards[rank::world]
        if not mine:
            raise ValueError(f"{len(shards)} latent shard(s) for {world} ranks: each rank needs at least one")
        self.tokenizer = tokenizer
        self.refs = [r for shard in mine for r in sample_refs(shard) if r.caption]
        if not self.refs:
            raise ValueError(f"no captioned samples in the latent shards of {', '.join(directories)}")
        self.captions = [r.caption for r in self.refs]
        self.frames = np.array([r.frames for r in self.refs])

    def crop(self, i: int, start: int, frames: int) -> torch.Tensor:
        return self.tokenizer.normalize_latents(torch.from_numpy(read_sample(self.refs[i], start, frames)))


def flow_batch(data: CaptionedLatents | ShardedLatents, text: TextEncoder, gen: torch.Generator, size: int,
               max_frames: int) -> tuple[torch.Tensor, ...]:
    """Random crops of up to ``max_frames`` (padded, with a frame mask) and their captions' token embeddings."""
    picks = weighted_crops(data.frames, size, max_frames, gen)
    crops = [data.crop(i, start, max_frames) for i, start in picks]
    lengths = torch.tensor([len(c) for c in crops])
    z = torch.zeros(size, int(lengths.max()), crops[0].shape[-1])
    for j, c in enumerate(crops):
        z[j, : len(c)] = c
    tokens, token_mask = text([data.captions[i] for i, _ in picks])
    return z, lengths_to_mask(lengths, z.shape[1]), tokens.cpu(), token_mask.cpu()


def run_flow(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Path:
    torch.manual_seed(cfg.seed)
    device = device_for(rank)
    run = Run(cfg.out, rank)
    f = cfg.flow
    precision = resolve_autocast("flow", f.autocast, device, rank)
    tokenizer = load_codec(f.tokenizer or None).eval()
    net_cfg = VelocityNetConfig(latent_dim=tokenizer.latent_dim, text_dim=TextEncoder.dim, dim=f.dim, depth=f.depth,
                                heads=f.heads)
    model = TextToAudio(net_cfg, Tie.to(tokenizer)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    step = run.resume({"net": model.net}, {"opt": opt}, "flow")
    t0 = time.perf_counter()
    captions = TextEncoder()
    data: CaptionedLatents | ShardedLatents
    if cfg.data.latent_shards:
        data = ShardedLatents(tokenizer, cfg.data.latent_shards, rank, world)
        where = f"in {len(cfg.data.latent_shards)} latent shard folder(s), indexed"
    else:
        data = CaptionedLatents(tokenizer, cfg.data.manifests)
        where = "encoded and cached"
    say(rank, f"flow: {len(data.captions)} captioned clips, {data.frames.sum() / tokenizer.frame_rate / 3600:.2f} h "
               f"of latents {where} in {time.perf_counter() - t0:.0f} s; "
               f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    net = wrap_ddp(model.net, world)
    max_frames = int(f.max_seconds * tokenizer.frame_rate)
    per_rank = cfg.batch_size // world
    t0 = time.perf_counter()
    while step < cfg.steps:
        if stopped := run.out_of_time(cfg, t0, step, {"net": model.net}, {"opt": opt}, world, model, "flow"):
            return stopped
        gen = batch_generator(cfg.seed, step, rank)
        z, frame_mask, text, text_mask = (t.to(device) for t in flow_batch(data, captions, gen, per_rank, max_frames))
        drop = (torch.rand(per_rank, generator=gen) < f.caption_dropout).to(device)

        def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return net(x, t, text, text_mask, frame_mask, drop)  # noqa: B023  (used within this iteration)

        with autocast_for(precision, device):
            loss = flow_loss(field, z, gen, frame_mask)
        grad_norm = optimizer_step(opt, loss, model, cfg, step)
        step += 1
        log_progress(run, cfg, step, t0, "flow", "flow/loss", loss, grad_norm, opt.param_groups[0]["lr"])
        if step % cfg.save_every == 0 or step == cfg.steps:
            run.checkpoint(step, {"net": model.net}, {"opt": opt}, world, model)
    final = run.out / "generator.safetensors"
    if rank == 0:
        model.save(final, training={"trained": True, "stage": "flow", "steps": cfg.steps, "seed": cfg.seed,
                                    "tokenizer": tokenizer.model_id, "clips": len(data.captions)})
    return final
