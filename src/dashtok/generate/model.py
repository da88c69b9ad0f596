"""Text-to-audio on dashtok latents: a velocity network, its checkpoint, and sampling.

The network works on per-channel normalised latents (the tokenizer's ``latent_mean``/``latent_std``) and is tied to
the tokenizer it was trained with (its model id is saved in the checkpoint and checked at load).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from dashtok.atomic import save_safetensors
from dashtok.checkpoint import CheckpointError, read_metadata
from dashtok.config import dataclass_from_dict
from dashtok.generate.flow import guided, sample
from dashtok.generate.velocity_net import VelocityNet, VelocityNetConfig
from dashtok.tokenizer import Tokenizer

FORMAT = "dashtok-generator/1"


class TextToAudio(nn.Module):
    def __init__(self, config: VelocityNetConfig, tokenizer_id: str) -> None:
        super().__init__()
        self.config = config
        self.tokenizer_id = tokenizer_id
        self.net = VelocityNet(config)
        self.training_record: dict[str, Any] = {}

    def save(self, path: str | os.PathLike[str], training: dict[str, Any] | None = None) -> None:
        metadata = {"format": FORMAT, "config": json.dumps(asdict(self.config)), "tokenizer_id": self.tokenizer_id,
                    "training": json.dumps(training or self.training_record)}
        save_safetensors(self.net.state_dict(), path, metadata)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextToAudio:
        p = Path(path)
        meta = read_metadata(p)
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{p}: not a dashtok generator checkpoint (format {meta.get('format')!r})")
        model = cls(dataclass_from_dict(VelocityNetConfig, json.loads(meta["config"])), meta["tokenizer_id"])
        model.net.load_state_dict(load_file(str(p)), strict=True)
        model.training_record = json.loads(meta.get("training", "{}"))
        return model.eval()

    @torch.no_grad()
    def generate(self, tokenizer: Tokenizer, text: torch.Tensor, text_mask: torch.Tensor, seconds: float,
                 steps: int = 32, guidance: float = 3.0, seed: int = 0) -> torch.Tensor:
        """Text tokens (B, L, E) + mask -> audio (B, round(seconds * 25) * 640) at 16 kHz."""
        if tokenizer.model_id != self.tokenizer_id:
            raise CheckpointError(f"this generator was trained on latents of {self.tokenizer_id!r}, not of "
                                  f"{tokenizer.model_id!r}: pass the matching tokenizer checkpoint")
        if not 0 < seconds <= 60:
            raise ValueError(f"seconds must be in (0, 60], got {seconds}")
        frames = max(1, round(seconds * tokenizer.frame_rate))
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(text.shape[0], frames, tokenizer.latent_dim, generator=gen)

        def cond(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(x, t, text, text_mask)

        def uncond(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(x, t)

        z = sample(guided(cond, uncond, guidance), noise, steps)
        return tokenizer.decode(tokenizer.denormalize_latents(z)).audio
