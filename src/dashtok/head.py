"""iSTFT head: decoder hidden states -> log-magnitude and phase -> waveform."""

from __future__ import annotations

import torch
from torch import nn

from dashtok.config import DecoderConfig
from dashtok.spectral import ISTFT


class ISTFTHead(nn.Module):
    """forward(x (B, L, H), frame_mask (B, L)) -> audio (B, L * hop)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.max_magnitude = config.max_magnitude
        self.out = nn.Linear(config.dim, config.n_fft + 2)
        self.istft = ISTFT(config.n_fft, config.hop_length)

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        # The spectrum and its inverse are kept in float32 even under autocast: phase errors of bf16 are audible.
        with torch.autocast(x.device.type, enabled=False):
            log_mag, phase = self.out(x.float()).transpose(1, 2).chunk(2, dim=1)  # (B, F, L) each
            mag = torch.exp(log_mag).clamp(max=self.max_magnitude)  # the release: min(exp(x), 100)
            spec = torch.polar(mag, phase)
            return self.istft(spec, frame_mask)
