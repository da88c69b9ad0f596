"""Inverse STFT with "same" padding and per-item frame masks.

``torch.istft`` cannot do "same" padding (trim (n_fft - hop) / 2 on both sides) without an envelope check that
fails for it (https://github.com/pytorch/pytorch/issues/62323), so overlap-add is written out with ``fold``, as
Vocos does. A frame mask lets a padded batch produce, on each item's valid samples, exactly what the item gives
alone: masked frames add nothing to the signal *or* to the window envelope.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ISTFT(nn.Module):
    window: torch.Tensor
    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, spec: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """spec (B, n_fft // 2 + 1, L) complex; frame_mask (B, L) bool -> audio (B, L * hop), float32."""
        b, _, n_frames = spec.shape
        pad = (self.n_fft - self.hop_length) // 2
        frames = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        weight = self.window.square()[None, :, None].expand(b, -1, n_frames)
        if frame_mask is not None:
            m = frame_mask[:, None, :].to(frames.dtype)
            frames = frames * m
            weight = weight * m
        size = (n_frames - 1) * self.hop_length + self.n_fft
        fold = dict(output_size=(1, size), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        audio = F.fold(frames, **fold)[:, 0, 0, pad : size - pad]
        envelope = F.fold(weight, **fold)[:, 0, 0, pad : size - pad]
        safe = envelope > 1e-11
        return torch.where(safe, audio / torch.where(safe, envelope, 1.0), 0.0)
