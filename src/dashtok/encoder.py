"""The frozen semantic encoder: a Dasheng audio ViT over 64 x 4 log-mel patches.

Written for dashtok from the architecture described in the Dasheng paper and its Apache-2.0 release (see NOTICE).
Parameter and buffer names equal upstream's (``front_end.0.mel_scale.fb``, ``init_bn.1.weight``,
``patch_embed.proj.weight``, ``blocks.3.attn.qkv.weight``...), so an upstream checkpoint loads with a strict,
loud port (``checkpoint.load_dasheng_checkpoint``). This is why ``front_end`` and ``init_bn`` are sequentials with
index names, unlike the rest of the project.

Long inputs are cut into independent chunks of ``target_length`` mel frames (1008 = ~10 s), as upstream does;
chunks are batched together and run in groups of ``max_chunks`` so memory stays bounded for any length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from dashtok.config import EncoderConfig, FrontendConfig, latent_frames
from dashtok.frontend import AmplitudeToDB, MelSpectrogram, per_item_frames
from dashtok.masking import lengths_to_mask
from dashtok.precision import autocast_for


class _SwapMelAxis(nn.Module):
    """(B, 1, M, T) <-> (B, M, 1, T), so BatchNorm2d normalises each mel bin (upstream's einops Rearrange)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class PatchEmbed(nn.Module):
    def __init__(self, n_mels: int, patch_frames: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=(n_mels, patch_frames), stride=(n_mels, patch_frames))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, M, T) -> (B, D, 1, T // patch_frames)."""
        return self.proj(x)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D); key_mask (B, N) True where a key may be attended (None: all)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, N, Dh)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6, no layer scale: upstream's defaults). x (B, N, dim) ->
    (B, N, dim); the encoder's, and the one the MAE decoder and the enhancer stack."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_mask)
        return x + self.mlp(self.norm2(x))


class DashengEncoder(nn.Module):
    """Dasheng ViT encoder.

    ``encode`` runs the whole encoder on a (padded) batch. Its stages are methods too (MAE pretraining and the
    probes use them): ``log_mel`` wav (B, T) -> dB mel (B, M, F); ``normalize`` -> (B, 1, M, F);
    ``transformer`` -> (B, N, D) with N = F // patch_frames, one token per 40 ms.
    """

    def __init__(self, frontend: FrontendConfig, config: EncoderConfig, max_chunks: int = 8) -> None:
        super().__init__()
        self.frontend_config = frontend
        self.config = config
        self.max_chunks = max_chunks
        self.front_end = nn.Sequential(MelSpectrogram.dasheng(frontend), AmplitudeToDB(frontend))
        self.init_bn = nn.Sequential(_SwapMelAxis(), nn.BatchNorm2d(frontend.n_mels, momentum=0.01), _SwapMelAxis())
        self.patch_embed = PatchEmbed(frontend.n_mels, config.patch_frames, config.embed_dim)
        self.time_pos_embed = nn.Parameter(torch.randn(1, config.embed_dim, 1, config.chunk_tokens) * 0.02)
        self.freq_pos_embed = nn.Parameter(torch.randn(1, config.embed_dim, 1, 1) * 0.02)
        self.blocks = nn.ModuleList([Block(config.embed_dim, config.num_heads, config.mlp_ratio, config.qkv_bias)
                                     for _ in range(config.depth)])
        self.norm = nn.LayerNorm(config.embed_dim, eps=1e-6)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    @property
    def mel_spectrogram(self) -> MelSpectrogram:
        """The power mel of the front end (``front_end.0``, upstream's name)."""
        return cast(MelSpectrogram, self.front_end[0])

    @property
    def to_db(self) -> AmplitudeToDB:
        """The dB conversion with its top_db floor (``front_end.1``)."""
        return cast(AmplitudeToDB, self.front_end[1])

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """wav (B, T) -> dB mel (B, M, 1 + T // hop). Computed in float32 whatever the autocast state."""
        with torch.autocast(wav.device.type, enabled=False):
            return self.front_end(wav.float())

    def peak_db(self, read: Callable[[int, int], torch.Tensor], num_samples: int) -> torch.Tensor:
        """The dB maximum of a recording's mel (what its top_db floor is taken from), (1,): ``read(a, b)`` gives
        samples [a, b) as (1, b - a); read one chunk of frames at a time, so memory stays one chunk."""
        block, total = self.config.target_length, self.mel_spectrogram.spectrogram.num_frames(num_samples)
        peak = torch.tensor([-float("inf")], device=self.norm.weight.device)
        for f0 in range(0, total, block):
            mel = self.mel_spectrogram.frames_of(read, num_samples, f0, min(total, f0 + block))
            peak = torch.maximum(peak, self.to_db.db(mel).amax().reshape(1))
        return peak

    def encode_frames(self, read: Callable[[int, int], torch.Tensor], num_samples: int, f0: int, f1: int,
                      peak: torch.Tensor, precision: str = "fp32", mel: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mel frames [f0, f1) of a recording read piecewise (f0 at a chunk boundary; f1 too, or the recording's
        end), floored at ``peak - top_db`` (``peak_db``) -> tokens (1, (f1 - f0) // patch_frames, D) float32 and the
        normalised mel (1, 1, M, f1 - f0): exactly ``encode``'s for those frames of the whole recording, up to float
        rounding where chunks are grouped differently. Reads only the samples those frames see, or none when their
        power ``mel`` (1, M, f1 - f0) is given."""
        with torch.autocast(peak.device.type, enabled=False):  # the front end in float32, as ``log_mel``
            if mel is None:
                mel = self.mel_spectrogram.frames_of(read, num_samples, f0, f1)
            mel_db = self.to_db(mel, peak)  # the recording's floor, which frames alone cannot know
        x = self.normalize(mel_db)
        with autocast_for(precision, peak.device):
            return self.transformer(x).float(), x

    def normalize(self, mel_db: torch.Tensor) -> torch.Tensor:
        """dB mel (B, M, F) -> BatchNorm'd mel (B, 1, M, F)."""
        return self.init_bn(mel_db.unsqueeze(1))

    def transformer(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised mel (B, 1, M, F) -> tokens (B, N, D), N = F // patch_frames.

        ``lengths`` (B,) counts valid tokens; padded tokens are never attended to and come out as zeros.
        Each chunk of ``chunk_tokens`` tokens is encoded independently, with position embeddings restarting at 0.
        """
        x = self.patch_embed(x)  # (B, D, 1, N)
        b, d, _, n = x.shape
        c = self.config.chunk_tokens
        k = -(-n // c)  # chunks per item
        x = (x + self.freq_pos_embed).squeeze(2).transpose(1, 2)  # (B, N, D)
        x = F.pad(x, (0, 0, 0, k * c - n))
        x = x.reshape(b * k, c, d) + self.time_pos_embed[0, :, 0, :].T  # (B*K, C, D)
        if lengths is None:
            lengths = torch.full((b,), n, device=x.device, dtype=torch.long)
        valid = lengths_to_mask(lengths, k * c).reshape(b * k, c)  # (B*K, C)
        counts = valid.sum(dim=1)  # valid tokens per chunk
        out = torch.zeros_like(x)
        # Full chunks run together; partial chunks (an item's last one) run cut to their longest valid length, as
        # upstream runs them: padded keys are masked anyway, so computing them would only cost time.
        full = torch.nonzero(counts == c).squeeze(1)
        partial = torch.nonzero((counts > 0) & (counts < c)).squeeze(1)
        partial = partial[torch.argsort(counts[partial], descending=True)]  # similar lengths share a group
        for group in list(full.split(self.max_chunks)) + list(partial.split(self.max_chunks)):
            if len(group) == 0:
                continue
            width = int(counts[group].max())
            mask = valid[group, :width]
            h = x[group, :width]
            key_mask = None if bool(mask.all()) else mask
            for block in self.blocks:
                h = block(h, key_mask)
            out[group, :width] = self.norm(h) * mask.unsqueeze(-1)
        return out.reshape(b, k * c, d)[:, :n]

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor, precision: str = "fp32"
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """wav (B, T), lengths (B,) valid samples -> tokens (B, N, D) float32 and the normalised mel (B, 1, M, F).

        With ``top_db_scope="example"`` each item's mel is computed alone (its own STFT end and dB floor), so a
        padded batch equals its items encoded one at a time; ``"batch"`` runs the padded batch as upstream does.
        The front end and BatchNorm run in float32; the transformer under ``precision``'s autocast.
        """
        hop = self.frontend_config.hop_length
        if self.frontend_config.top_db_scope == "batch":
            mel = self.log_mel(wav)
        else:
            mel = per_item_frames(self.log_mel, wav, lengths, hop)  # (B, M, F)
        x = self.normalize(mel)
        tokens = latent_frames(lengths, hop, self.config.patch_frames)
        with autocast_for(precision, wav.device):
            return self.transformer(x, tokens).float(), x

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """wav (B, T) -> tokens (B, N, D); ``lengths`` in tokens. See ``Tokenizer.encode`` for the full API."""
        return self.transformer(self.normalize(self.log_mel(wav)), lengths)
