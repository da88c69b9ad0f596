"""Acoustic injection: the paper's "one layer", with the acoustic front end that feeds it.

Why a single linear layer: the frozen Dasheng features already carry what the latent needs for understanding;
what they lack for reconstruction is fine spectral detail, which the mel patch of each 40 ms frame holds. A linear
map of that patch, *added* to the semantic token, keeps the latent in the encoder's space (good for probes and
generators) while making it invertible enough for a vocoder. Anything deeper would start to learn a second encoder,
which is what the paper set out to avoid.

As released (``front_end="acoustic"``), the patch comes from the injection's own front end, not from the encoder's
input: a magnitude mel (n_fft 1024, hop 160, 128 HTK bins over 0-8 kHz, centred) under a natural log of
``max(mel, 1e-7)``, no BatchNorm, no dB. The 128 x 4 patch is mapped to the encoder width by one linear layer
(the release stores it as a Conv2d with kernel = stride = (128, 4): the same map, mel-major) and LayerNorm'd:

    latents = semantic[:, :N] + LayerNorm(W · patch + b),   N = (1 + T // 160) // 4

``front_end="encoder_mel"`` (checkpoints of format dashtok/1) took the encoder's BatchNorm'd 64 x 4 dB mel patch
and had no LayerNorm.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dashtok.config import FrontendConfig, InjectionConfig
from dashtok.frontend import MelSpectrogram, per_item_frames


class AcousticFrontEnd(nn.Module):
    """wav (B, T) -> natural-log magnitude mel (B, n_mels, 1 + T // hop), float32 whatever the autocast state.

    ``mel_spec`` equals torchaudio's ``MelSpectrogram(n_fft=1024, hop_length=160, n_mels=128, power=1)``.
    """

    def __init__(self, config: InjectionConfig, frontend: FrontendConfig) -> None:
        super().__init__()
        self.hop_length = frontend.hop_length
        self.log_floor = config.log_floor
        # window and filterbank are derived from the config: not stored in dashtok checkpoints (the release stores
        # them; its port checks them against these, see ``dashtok.release``)
        self.mel_spec = MelSpectrogram(frontend.sample_rate, config.n_fft, config.n_fft, frontend.hop_length,
                                       config.n_mels, config.f_min, config.f_max, power=1.0, persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wav.device.type, enabled=False):
            return self._log(self.mel_spec(wav.float()))

    def frames_of(self, read: Callable[[int, int], torch.Tensor], num_samples: int, f0: int, f1: int
                  ) -> torch.Tensor:
        """Frames [f0, f1) of a signal read piecewise (``Spectrogram.frames_of``): exactly ``forward``'s."""
        with torch.autocast(self.mel_spec.mel_scale.fb.device.type, enabled=False):
            return self._log(self.mel_spec.frames_of(read, num_samples, f0, f1))

    def _log(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.clamp(mel, min=self.log_floor))


class AcousticInjection(nn.Module):
    """patches (B, N, n_mels * patch_frames) -> added to semantic (B, N, D)."""

    def __init__(self, config: InjectionConfig, frontend: FrontendConfig, patch_frames: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_frames = patch_frames
        acoustic = config.front_end == "acoustic"
        self.front_end = AcousticFrontEnd(config, frontend) if acoustic else None
        n_mels = config.n_mels if acoustic else frontend.n_mels
        self.proj = nn.Linear(n_mels * patch_frames, embed_dim)
        self.norm = nn.LayerNorm(embed_dim, eps=config.layer_norm_eps) if acoustic else None

    @staticmethod
    def patches_of(mel: torch.Tensor, patch_frames: int) -> torch.Tensor:
        """Mel (B, M, F) or (B, 1, M, F) -> one flattened (M x P) patch per token, (B, F // P, M * P), mel-major
        (index m * P + p: the order of a Conv2d weight with kernel (M, P))."""
        if mel.ndim == 4:
            mel = mel[:, 0]
        b, m, f = mel.shape
        n = f // patch_frames
        x = mel[:, :, : n * patch_frames].reshape(b, m, n, patch_frames)
        return x.permute(0, 2, 1, 3).reshape(b, n, m * patch_frames)

    def patches(self, wav: torch.Tensor, lengths: torch.Tensor, encoder_mel: torch.Tensor) -> torch.Tensor:
        """The layer's input: wav (B, T), lengths (B,) samples, the encoder's normalised mel (B, 1, M, F) (read
        only by the ``encoder_mel`` variant) -> patches (B, N, M * P). A padded batch equals its items alone."""
        if self.front_end is None:
            return self.patches_of(encoder_mel, self.patch_frames)
        mel = per_item_frames(self.front_end, wav, lengths, self.front_end.hop_length)
        return self.patches_of(mel, self.patch_frames)

    def patches_of_frames(self, read: Callable[[int, int], torch.Tensor], num_samples: int, f0: int, f1: int,
                          encoder_mel: torch.Tensor) -> torch.Tensor:
        """The layer's input for mel frames [f0, f1) of one recording read piecewise (``read(a, b)`` -> (1, b - a)),
        the encoder's normalised mel of those frames (1, 1, M, f1 - f0) beside it -> patches (1, N, M * P):
        exactly ``patches`` of the whole recording, those frames."""
        if self.front_end is None:
            return self.patches_of(encoder_mel, self.patch_frames)
        return self.patches_of(self.front_end.frames_of(read, num_samples, f0, f1), self.patch_frames)

    def forward(self, semantic: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """semantic (B, N, D), patches (B, N, M * P) -> latents (B, N, D)."""
        acoustic = self.proj(patches)
        return semantic + (acoustic if self.norm is None else self.norm(acoustic))
