"""Stage 3: text-to-audio flow matching on the latents of a frozen, trained tokenizer.

Latents of every training clip (normalised per channel) and the token embeddings of its caption are computed once.
Batches are random crops of up to ``flow.max_seconds``, padded with a frame mask; a fraction of captions is replaced
by the null token so that one network gives both the conditional and the unconditional field (guidance).
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
from dashtok.generate.velocity_net import VelocityNetConfig
from dashtok.masking import lengths_to_mask
from dashtok.train.config import TrainConfig
from dashtok.train.data import batch_generator, weighted_crops
from dashtok.train.run import Run, device_for, log_progress, optimizer_step, say, wrap_ddp


class CaptionedLatents:
    """Normalised latents (N, D) and caption tokens (L, E) of every captioned training clip."""

    def __init__(self, tokenizer: Codec, text: TextEncoder, manifests: tuple[str, ...]) -> None:
        self.latents: list[torch.Tensor] = []
        self.tokens: list[torch.Tensor] = []
        for m in manifests:
            root = Path(m).parent
            clips = [c for c in read_manifest(m) if c.caption]
            for start in range(0, len(clips), 64):
                group = clips[start : start + 64]
                tok, mask = text([c.caption for c in group])
                for c, t, k in zip(group, tok, mask, strict=True):
                    x = load_audio(root / c.path, tokenizer.sample_rate)
                    if len(x) < tokenizer.min_num_samples:
                        continue
                    z = tokenizer.encode(x).latents[0]
                    self.latents.append(tokenizer.normalize_latents(z).cpu())
                    self.tokens.append(t[k].cpu())
        if not self.latents:
            raise ValueError("no captioned training clips found in the manifests")
        self.frames = np.array([len(z) for z in self.latents])

    def batch(self, gen: torch.Generator, size: int, max_frames: int) -> tuple[torch.Tensor, ...]:
        picks = weighted_crops(self.frames, size, max_frames, gen)
        idx = [i for i, _ in picks]
        crops = [self.latents[i][start : start + max_frames] for i, start in picks]
        lengths = torch.tensor([len(c) for c in crops])
        data = torch.zeros(size, int(lengths.max()), crops[0].shape[-1])
        for j, c in enumerate(crops):
            data[j, : len(c)] = c
        tlen = torch.tensor([len(self.tokens[i]) for i in idx])
        text = torch.zeros(size, int(tlen.max()), self.tokens[0].shape[-1])
        for j, i in enumerate(idx):
            text[j, : tlen[j]] = self.tokens[i]
        return data, lengths_to_mask(lengths, data.shape[1]), text, lengths_to_mask(tlen, text.shape[1])


def run_flow(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Path:
    torch.manual_seed(cfg.seed)
    device = device_for(rank)
    run = Run(cfg.out, rank)
    f = cfg.flow
    tokenizer = load_codec(f.tokenizer or None).eval()
    net_cfg = VelocityNetConfig(latent_dim=tokenizer.latent_dim, text_dim=TextEncoder.dim, dim=f.dim, depth=f.depth,
                                heads=f.heads)
    model = TextToAudio(net_cfg, tokenizer.model_id).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    step = run.resume({"net": model.net}, {"opt": opt}, "flow")
    t0 = time.perf_counter()
    data = CaptionedLatents(tokenizer, TextEncoder(), cfg.data.manifests)
    say(rank, f"flow: {len(data.latents)} captioned clips, {data.frames.sum() / tokenizer.frame_rate / 3600:.2f} h "
               f"of latents cached in {time.perf_counter() - t0:.0f} s; "
               f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    net = wrap_ddp(model.net, world)
    max_frames = int(f.max_seconds * tokenizer.frame_rate)
    per_rank = cfg.batch_size // world
    t0 = time.perf_counter()
    while step < cfg.steps:
        gen = batch_generator(cfg.seed, step, rank)
        z, frame_mask, text, text_mask = (t.to(device) for t in data.batch(gen, per_rank, max_frames))
        drop = (torch.rand(per_rank, generator=gen) < f.caption_dropout).to(device)

        def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return net(x, t, text, text_mask, frame_mask, drop)  # noqa: B023  (used within this iteration)

        loss = flow_loss(field, z, gen, frame_mask)
        grad_norm = optimizer_step(opt, loss, model, cfg, step)
        step += 1
        log_progress(run, cfg, step, t0, "flow", "flow/loss", loss, grad_norm, opt.param_groups[0]["lr"])
        if step % cfg.save_every == 0 or step == cfg.steps:
            run.checkpoint(step, {"net": model.net}, {"opt": opt}, world, model)
    final = run.out / "generator.safetensors"
    if rank == 0:
        model.save(final, training={"trained": True, "stage": "flow", "steps": cfg.steps, "seed": cfg.seed,
                                    "tokenizer": tokenizer.model_id, "clips": len(data.latents)})
    return final
