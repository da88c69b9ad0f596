"""DiT-style velocity network for latent flow matching.

Latent frames (B, N, D) -> linear in -> transformer blocks with adaptive LayerNorm on the flow time (shift, scale and
gate from the time embedding, as in DiT) and cross-attention to the text tokens -> linear out (B, N, D). Positions
are sinusoidal, so any duration can be generated. A learned "null" text token stands in for the caption when it is
dropped (classifier-free guidance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VelocityNetConfig:
    latent_dim: int = 192
    text_dim: int = 384  # all-MiniLM-L6-v2 token embeddings
    dim: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0


def sinusoid(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """x (...,) -> (..., dim) sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = x.float()[..., None] * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class Block(nn.Module):
    def __init__(self, cfg: VelocityNetConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.heads = cfg.heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm_cross = nn.LayerNorm(d, eps=1e-6)
        self.q_cross = nn.Linear(d, d)
        self.kv_cross = nn.Linear(d, 2 * d)
        self.proj_cross = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(d, int(d * cfg.mlp_ratio))
        self.fc2 = nn.Linear(int(d * cfg.mlp_ratio), d)
        self.modulation = nn.Linear(d, 6 * d)  # shift, scale, gate for attention and MLP
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                frame_mask: torch.Tensor | None) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(t_emb)[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = (self._heads(z) for z in self.qkv(h).chunk(3, dim=-1))
        attn_mask = None if frame_mask is None else frame_mask[:, None, None, :]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        x = x + gate1 * self.proj(a.transpose(1, 2).flatten(2))
        q = self._heads(self.q_cross(self.norm_cross(x)))
        k, v = (self._heads(z) for z in self.kv_cross(text).chunk(2, dim=-1))
        c = F.scaled_dot_product_attention(q, k, v, attn_mask=text_mask[:, None, None, :])
        x = x + self.proj_cross(c.transpose(1, 2).flatten(2))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.fc2(F.gelu(self.fc1(h)))


class VelocityNet(nn.Module):
    """forward(x_t (B, N, D), t (B,), text (B, L, E), text_mask (B, L), frame_mask (B, N)) -> velocity (B, N, D)."""

    def __init__(self, cfg: VelocityNetConfig) -> None:
        super().__init__()
        self.config = cfg
        self.inp = nn.Linear(cfg.latent_dim, cfg.dim)
        self.time_fc1 = nn.Linear(cfg.dim, cfg.dim)
        self.time_fc2 = nn.Linear(cfg.dim, cfg.dim)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.dim)
        self.null_text = nn.Parameter(torch.zeros(1, 1, cfg.text_dim))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm_out = nn.LayerNorm(cfg.dim, elementwise_affine=False, eps=1e-6)
        self.out_modulation = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.latent_dim)
        for layer in (self.out_modulation, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None, frame_mask: torch.Tensor | None = None,
                drop_text: torch.Tensor | None = None) -> torch.Tensor:
        """``drop_text`` (B,) bool replaces those items' captions by the null token (caption dropout for CFG)."""
        b, n, _ = x.shape
        if text is None:  # unconditional: the learned null token
            text = self.null_text.expand(b, 1, -1)
            text_mask = torch.ones(b, 1, dtype=torch.bool, device=x.device)
        elif text_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=x.device)
        if drop_text is not None and bool(drop_text.any()):
            first = torch.zeros_like(text_mask)
            first[:, 0] = True
            text = torch.where(drop_text[:, None, None], self.null_text.expand_as(text), text)
            text_mask = torch.where(drop_text[:, None], first, text_mask)
        t_emb = self.time_fc2(F.silu(self.time_fc1(sinusoid(t * 1000.0, self.config.dim))))
        pos = sinusoid(torch.arange(n, device=x.device), self.config.dim)
        h = self.inp(x) + pos
        txt = self.text_proj(text)
        for block in self.blocks:
            h = block(h, t_emb, txt, text_mask, frame_mask)
        shift, scale = self.out_modulation(t_emb)[:, None].chunk(2, dim=-1)
        return self.out(self.norm_out(h) * (1 + scale) + shift)
