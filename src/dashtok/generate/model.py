"""Text-to-audio on dashtok latents: a velocity network, its checkpoint, and sampling.

The network works on per-channel normalised latents (the tokenizer's ``latent_mean``/``latent_std``) and is tied to
the tokenizer it was trained with (its model id is saved in the checkpoint and checked at load).
"""

from __future__ import annotations

import math
import operator
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from dashtok.codec import Codec
from dashtok.generate.flow import guided, sample
from dashtok.generate.tied import Tie, bundled_checkpoint, load_tied, require_tokenizer, save_tied
from dashtok.generate.velocity_net import VelocityNet, VelocityNetConfig

FORMAT = "dashtok-generator/1"
BUNDLED = "generator.safetensors"  # trained on the bundled default tokenizer's latents


MAX_SECONDS = 60.0  # the longest clip generate() samples


class TextToAudio(nn.Module):
    def __init__(self, config: VelocityNetConfig, tie: Tie) -> None:
        super().__init__()
        self.config = config
        self.tie = tie  # the tokenizer whose latents it works on
        self.net = VelocityNet(config)
        self.training_record: dict[str, Any] = {}

    def save(self, path: str | os.PathLike[str], training: dict[str, Any] | None = None) -> None:
        save_tied(self.net.state_dict(), self.config, self.tie, FORMAT, path,
                  training or self.training_record)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextToAudio:
        config, tie, state, record = load_tied(path, FORMAT, "generator", VelocityNetConfig)
        model = cls(config, tie)
        model.net.load_state_dict(state, strict=True)
        model.training_record = record
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None) -> TextToAudio:
        """A generator checkpoint, or (``None``) the one bundled with the package, for the default tokenizer."""
        return cls.load(bundled_checkpoint(path, BUNDLED, "generator", "configs/flow_small.toml"))

    @torch.no_grad()
    def generate(self, tokenizer: Codec, text: torch.Tensor | np.ndarray, text_mask: torch.Tensor | np.ndarray | None,
                 seconds: float,
                 steps: int = 32, guidance: float = 3.0, seed: int = 0) -> torch.Tensor:
        """Text tokens (B, L, E) + mask -> audio (B, round(seconds * 25) * 640) at 16 kHz, decoded by ``tokenizer``
        (the tokenizer or VAE the generator was trained on)."""
        require_tokenizer(tokenizer, self.tie, "generator")
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be in (0, {MAX_SECONDS:g}], got {seconds}")
        text, text_mask = caption_inputs(text, text_mask, self.config.text_dim)
        try:
            steps = operator.index(steps)
        except TypeError:
            raise ValueError(f"steps must be a whole number, got {steps!r}") from None
        if not math.isfinite(guidance):
            raise ValueError(f"guidance must be a finite number, got {guidance}")
        frames = max(1, round(seconds * tokenizer.frame_rate))
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(text.shape[0], frames, tokenizer.latent_dim, generator=gen)

        def cond(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(x, t, text, text_mask)

        def uncond(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(x, t)

        z = sample(guided(cond, uncond, guidance), noise, steps)
        return tokenizer.decode(tokenizer.denormalize_latents(z)).audio


def caption_inputs(text: Any, text_mask: Any, text_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the text encoder's output for ``generate`` -> (token embeddings (B, L, E) float32, mask (B, L) bool).

    The mask may be bool or 0/1 of any dtype (a Hugging Face tokenizer's ``attention_mask``): nonzero marks a token.
    (A 0/1 float mask must not reach the attention as it is: torch reads a float mask as scores to add, masking
    nothing.) ``None`` marks every position a token."""
    x = torch.as_tensor(np.asarray(text) if not isinstance(text, torch.Tensor) else text)
    if x.ndim != 3 or x.shape[-1] != text_dim or 0 in x.shape:
        raise ValueError(f"text must be token embeddings (B, L, {text_dim}) for this generator (TextEncoder's "
                         f"output), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"text must be float token embeddings, got dtype {x.dtype}")
    x = x.float()
    if text_mask is None:
        return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    mask = torch.as_tensor(np.asarray(text_mask) if not isinstance(text_mask, torch.Tensor) else text_mask)
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"text_mask must be (B, L) = {tuple(x.shape[:2])} like text, got shape {tuple(mask.shape)}")
    mask = (mask != 0).to(x.device)
    empty = [i for i in range(mask.shape[0]) if not bool(mask[i].any())]
    if empty:
        raise ValueError(f"caption(s) {empty[:5]} have no token in text_mask")
    return x, mask
