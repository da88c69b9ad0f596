"""Speech enhancement in latent space: noisy-speech latents -> clean-speech latents, decoded by the tokenizer.

A small non-causal transformer predicts a residual on per-channel normalised latents (zero-initialised output, so
an untrained enhancer is the identity). Tied to the tokenizer it was trained with, like the generator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dashtok.audio_io import fit_length
from dashtok.encoder import Block
from dashtok.generate.tied import bundled_checkpoint, load_tied, require_tokenizer, save_tied
from dashtok.generate.velocity_net import sinusoid
from dashtok.tokenizer import Tokenizer

FORMAT = "dashtok-enhancer/1"
BUNDLED = "enhancer.safetensors"  # trained on the bundled default tokenizer's latents


@dataclass(frozen=True)
class EnhancerConfig:
    latent_dim: int = 192
    dim: int = 256
    depth: int = 4
    heads: int = 4


class LatentEnhancer(nn.Module):
    """forward(noisy (B, N, D) normalised latents, mask (B, N)) -> clean estimate (B, N, D)."""

    def __init__(self, config: EnhancerConfig, tokenizer_id: str) -> None:
        super().__init__()
        self.config = config
        self.tokenizer_id = tokenizer_id
        self.inp = nn.Linear(config.latent_dim, config.dim)
        self.blocks = nn.ModuleList([Block(config.dim, config.heads) for _ in range(config.depth)])
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.out = nn.Linear(config.dim, config.latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.training_record: dict[str, Any] = {}

    def forward(self, noisy: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(noisy) + sinusoid(torch.arange(noisy.shape[1], device=noisy.device), self.config.dim)
        for block in self.blocks:
            h = block(h, mask)
        return noisy + self.out(self.norm(h))

    def save(self, path: str | os.PathLike[str], training: dict[str, Any] | None = None) -> None:
        save_tied(self.state_dict(), self.config, self.tokenizer_id, FORMAT, path, training or self.training_record)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatentEnhancer:
        config, tokenizer_id, state, record = load_tied(path, FORMAT, "enhancer", EnhancerConfig)
        model = cls(config, tokenizer_id)
        model.load_state_dict(state, strict=True)
        model.training_record = record
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None) -> LatentEnhancer:
        """An enhancer checkpoint, or (``None``) the one bundled with the package, for the default tokenizer."""
        return cls.load(bundled_checkpoint(path, BUNDLED, "enhancer", "configs/enhance_small.toml"))

    @torch.no_grad()
    def enhance(self, tokenizer: Tokenizer, audio: np.ndarray) -> np.ndarray:
        """Noisy 16 kHz mono audio (T,) -> enhanced audio (T,)."""
        require_tokenizer(tokenizer, self.tokenizer_id, "enhancer")
        z = tokenizer.normalize_latents(tokenizer.encode(audio).latents)
        clean = tokenizer.denormalize_latents(self(z))
        y = tokenizer.decode(clean).audio[0].cpu().numpy()
        return fit_length(y, len(audio))


def wiener_baseline(noisy: np.ndarray, n_fft: int = 512, hop: int = 128, noise_quantile: float = 0.1) -> np.ndarray:
    """A classical reference: Wiener-style gain with the noise spectrum taken from the quietest 10 % of frames."""
    x = torch.from_numpy(np.asarray(noisy, dtype=np.float32))
    window = torch.hann_window(n_fft)
    spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)  # (F, T)
    power = spec.abs().square()
    energy = power.sum(0)
    quiet = energy <= torch.quantile(energy, noise_quantile)
    noise = power[:, quiet].mean(1, keepdim=True)
    gain = torch.clamp(1 - noise / power.clamp(min=1e-12), min=0.1)
    y = torch.istft(spec * gain, n_fft, hop, window=window, length=len(x))
    return y.numpy()
