"""Stage 1: masked-autoencoder pretraining of a Dasheng encoder (as in the Dasheng paper, at small scale).

The encoder sees a random 25 % of the 40 ms patches of a 10.08 s segment (one encoder chunk, so every time
position embedding is trained); a small transformer decoder predicts the dB mel of the masked patches, each
target patch normalised to zero mean and unit variance (upstream's ``norm_pix_loss``).
"""

from __future__ import annotations

import torch
from torch import nn

from dashtok.config import EncoderConfig, FrontendConfig
from dashtok.encoder import Block, DashengEncoder
from dashtok.injection import AcousticInjection
from dashtok.train.config import MAEConfig


class MAEDecoder(nn.Module):
    def __init__(self, encoder_dim: int, config: MAEConfig, num_tokens: int, patch_dim: int) -> None:
        super().__init__()
        self.input_proj = nn.Linear(encoder_dim, config.decoder_dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, config.decoder_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, num_tokens, config.decoder_dim) * 0.02)
        self.blocks = nn.ModuleList([Block(config.decoder_dim, config.decoder_heads)
                                     for _ in range(config.decoder_depth)])
        self.norm = nn.LayerNorm(config.decoder_dim, eps=1e-6)
        self.output = nn.Linear(config.decoder_dim, patch_dim)

    def forward(self, visible: torch.Tensor, keep: torch.Tensor, num_tokens: int) -> torch.Tensor:
        """visible (B, K, D_enc) at token indices keep (B, K) -> predicted patches (B, N, patch_dim)."""
        b = visible.shape[0]
        h = self.input_proj(visible)
        full = self.mask_token.expand(b, num_tokens, -1).clone()
        full.scatter_(1, keep.unsqueeze(-1).expand(-1, -1, h.shape[-1]), h)
        x = full + self.pos_embed[:, :num_tokens]
        for block in self.blocks:
            x = block(x)
        return self.output(self.norm(x))


class MAE(nn.Module):
    def __init__(self, frontend: FrontendConfig, encoder: EncoderConfig, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = DashengEncoder(frontend, encoder)
        patch_dim = frontend.n_mels * encoder.patch_frames
        self.decoder = MAEDecoder(encoder.embed_dim, config, encoder.chunk_tokens, patch_dim)

    def forward(self, wav: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """wav (B, T) of at most one chunk -> masked-patch reconstruction loss (scalar)."""
        enc = self.encoder
        with torch.no_grad():
            mel = enc.log_mel(wav)  # (B, M, F)
        x = enc.normalize(mel)  # BatchNorm statistics are learned here, then frozen for good
        tokens = enc.patch_embed(x)  # (B, D, 1, N)
        b, d, _, n = tokens.shape
        tokens = (tokens + enc.freq_pos_embed + enc.time_pos_embed[..., :n]).squeeze(2).transpose(1, 2)
        n_keep = max(1, int(round(n * (1 - self.config.mask_ratio))))
        order = torch.argsort(torch.rand(b, n, generator=gen), dim=1).to(wav.device)
        keep = order[:, :n_keep]
        h = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, d))
        for block in enc.blocks:
            h = block(h)
        pred = self.decoder(enc.norm(h), keep, n)
        target = AcousticInjection.patches_of(mel.unsqueeze(1), enc.config.patch_frames)  # (B, N, M * P)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        masked = torch.ones(b, n, device=wav.device)
        masked.scatter_(1, keep, 0.0)
        per_patch = (pred - target).square().mean(-1)
        return (per_patch * masked).sum() / masked.sum()
