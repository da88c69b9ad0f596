"""Text-to-audio on dashtok latents: a velocity network, its checkpoint, and sampling.

The network works on per-channel normalised latents (the tokenizer's ``latent_mean``/``latent_std``) and is tied to
the tokenizer it was trained with (its model id is saved in the checkpoint and checked at load).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from dashtok.codec import Codec
from dashtok.generate.flow import guided, sample
from dashtok.generate.tied import bundled_checkpoint, load_tied, require_tokenizer, save_tied
from dashtok.generate.velocity_net import VelocityNet, VelocityNetConfig

FORMAT = "dashtok-generator/1"
BUNDLED = "generator.safetensors"  # trained on the bundled default tokenizer's latents


MAX_SECONDS = 60.0  # the longest clip generate() samples


class TextToAudio(nn.Module):
    def __init__(self, config: VelocityNetConfig, tokenizer_id: str) -> None:
        super().__init__()
        self.config = config
        self.tokenizer_id = tokenizer_id
        self.net = VelocityNet(config)
        self.training_record: dict[str, Any] = {}

    def save(self, path: str | os.PathLike[str], training: dict[str, Any] | None = None) -> None:
        save_tied(self.net.state_dict(), self.config, self.tokenizer_id, FORMAT, path,
                  training or self.training_record)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextToAudio:
        config, tokenizer_id, state, record = load_tied(path, FORMAT, "generator", VelocityNetConfig)
        model = cls(config, tokenizer_id)
        model.net.load_state_dict(state, strict=True)
        model.training_record = record
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None) -> TextToAudio:
        """A generator checkpoint, or (``None``) the one bundled with the package, for the default tokenizer."""
        return cls.load(bundled_checkpoint(path, BUNDLED, "generator", "configs/flow_small.toml"))

    @torch.no_grad()
    def generate(self, tokenizer: Codec, text: torch.Tensor, text_mask: torch.Tensor, seconds: float,
                 steps: int = 32, guidance: float = 3.0, seed: int = 0) -> torch.Tensor:
        """Text tokens (B, L, E) + mask -> audio (B, round(seconds * 25) * 640) at 16 kHz, decoded by ``tokenizer``
        (the tokenizer or VAE the generator was trained on)."""
        require_tokenizer(tokenizer, self.tokenizer_id, "generator")
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be in (0, {MAX_SECONDS:g}], got {seconds}")
        frames = max(1, round(seconds * tokenizer.frame_rate))
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(text.shape[0], frames, tokenizer.latent_dim, generator=gen)

        def cond(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(x, t, text, text_mask)

        def uncond(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(x, t)

        z = sample(guided(cond, uncond, guidance), noise, steps)
        return tokenizer.decode(tokenizer.denormalize_latents(z)).audio
