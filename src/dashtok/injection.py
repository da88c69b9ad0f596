"""Acoustic injection: the paper's "one layer".

Why a single linear layer: the frozen Dasheng features already carry what the latent needs for understanding;
what they lack for reconstruction is fine spectral detail, which the 64 x 4 mel patch of each 40 ms frame holds.
A linear map of that patch, *added* to the semantic token, keeps the latent in the encoder's space (good for
probes and generators) while making it invertible enough for a vocoder. Anything deeper would start to learn a
second encoder, which is what the paper set out to avoid.

The patch is taken from the encoder's own BatchNorm'd mel (its input), so the layer sees per-bin normalised
features and no second front end is needed.
"""

from __future__ import annotations

import torch
from torch import nn


class AcousticInjection(nn.Module):
    """patches (B, N, n_mels * patch_frames) -> added to semantic (B, N, D)."""

    def __init__(self, n_mels: int, patch_frames: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(n_mels * patch_frames, embed_dim)

    @staticmethod
    def patches_of(mel: torch.Tensor, patch_frames: int) -> torch.Tensor:
        """Normalised mel (B, 1, M, F) -> one flattened (M x P) patch per token, (B, F // P, M * P), mel-major."""
        b, _, m, f = mel.shape
        n = f // patch_frames
        x = mel[:, 0, :, : n * patch_frames].reshape(b, m, n, patch_frames)
        return x.permute(0, 2, 1, 3).reshape(b, n, m * patch_frames)

    def forward(self, semantic: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """semantic (B, N, D), patches (B, N, M * P) -> latents (B, N, D)."""
        return semantic + self.proj(patches)
