"""Vocos-style decoder backbone: transposed-conv upsampler (25 -> 50 Hz) -> ConvNeXt blocks.

Every convolution sees zeros past each item's length (inputs are masked before each conv), which is what an
item decoded alone sees as padding; so a padded batch equals its items decoded one at a time.
"""

from __future__ import annotations

import torch
from torch import nn

from dashtok.config import DecoderConfig


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> pointwise MLP -> layer scale, residual. x (B, C, L) -> (B, C, L). The
    decoder's, and the VAE baseline's encoder's."""

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.dwconv(x if mask is None else x * mask).transpose(1, 2)  # (B, L, C)
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h)))) * self.gamma
        return x + h.transpose(1, 2)


class VocosDecoder(nn.Module):
    """latents (B, N, D_latent), frame_mask (B, N * upsample) -> hidden (B, N * upsample, dim)."""

    def __init__(self, config: DecoderConfig, latent_dim: int) -> None:
        super().__init__()
        self.config = config
        width = latent_dim if config.upsampler_width == "latent" else config.dim
        self.upsample = nn.ConvTranspose1d(latent_dim, width, config.upsample, stride=config.upsample)
        self.embed = nn.Conv1d(width, config.dim, config.kernel_size, padding=config.kernel_size // 2)
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.blocks = nn.ModuleList([ConvNeXtBlock(config.dim, config.intermediate_dim, config.kernel_size,
                                                   1.0 / config.num_blocks) for _ in range(config.num_blocks)])
        self.final_norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, latents: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = None if frame_mask is None else frame_mask[:, None, :].to(latents.dtype)  # (B, 1, L)
        x = self.upsample(latents.transpose(1, 2))  # (B, width, L), kernel == stride: no overlap between frames
        x = self.embed(x if mask is None else x * mask)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x.transpose(1, 2))  # (B, L, dim)
