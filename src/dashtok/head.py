"""iSTFT heads: decoder hidden states -> a complex spectrum on the head's (n_fft, hop) grid -> waveform.

Every head is a ``SpectralHead``: one linear layer ``out`` reads the hidden states, and ``polar`` turns its output
into magnitude, cos(phase) and sin(phase) in real arithmetic (float32 even under autocast: phase errors of bf16 are
audible). The base inverts that spectrum (``spectral.ISTFT``); ONNX export runs the same ``polar``, and streaming
needs only the grid (``n_fft``, ``hop_length``). A head is chosen by ``DecoderConfig.phase``:

- ``"angle"``: magnitude and a raw phase angle (the release's head: ``out`` rows are F log-magnitudes, then F angles);
- ``"parallel"``: magnitude and the phase as the direction of a predicted (real, imaginary) pair, i.e.
  phase = atan2(I, R) without computing it (APNet's parallel phase estimation): F log-magnitudes, F R, F I. A raw
  angle must learn to wrap at +-pi; a direction has no wrap, so phase errors give smooth gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from dashtok.config import DecoderConfig
from dashtok.spectral import ISTFT


class SpectralHead(nn.Module):
    """forward(x (B, L, H), frame_mask (B, L)) -> audio (B, L * hop). Subclasses set ``out`` and ``polar``."""

    rows_per_bin = 2  # rows of ``out`` per frequency bin: the log-magnitude first, then the phase's

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.num_bins = config.n_fft // 2 + 1
        self.max_magnitude = config.max_magnitude
        self.out = nn.Linear(config.dim, self.rows_per_bin * self.num_bins)
        self.istft = ISTFT(config.n_fft, config.hop_length)

    def magnitude(self, log_mag: torch.Tensor) -> torch.Tensor:
        return torch.exp(log_mag).clamp(max=self.max_magnitude)  # the release: min(exp(x), 100)

    def polar(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """hidden (B, L, H) float32 -> magnitude, cos(phase), sin(phase), each (B, F, L)."""
        raise NotImplementedError

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, H) -> complex spectrum (B, F, L), float32."""
        with torch.autocast(x.device.type, enabled=False):
            mag, cos, sin = self.polar(x.float())
            return torch.complex(mag * cos, mag * sin)

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.render(x, frame_mask)[0]

    def render(self, x: torch.Tensor, frame_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (B, L, H) -> audio (B, L * hop) and the complex spectrum (B, F, L) it was made from, float32."""
        with torch.autocast(x.device.type, enabled=False):
            spectrum = self.spectrum(x)
            return self.istft(spectrum, frame_mask), spectrum

    def adopt_magnitude(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Take the log-magnitude rows of another head's ``out`` (a new phase parametrisation on a trained decoder:
        the magnitude is kept, the phase rows start from their initialisation)."""
        with torch.no_grad():
            self.out.weight[: self.num_bins].copy_(weight[: self.num_bins])
            self.out.bias[: self.num_bins].copy_(bias[: self.num_bins])


class AngleHead(SpectralHead):
    """The release's head: phase = a predicted angle."""

    def polar(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_mag, phase = self.out(x).transpose(1, 2).chunk(2, dim=1)  # (B, F, L) each
        return self.magnitude(log_mag), torch.cos(phase), torch.sin(phase)


class ParallelPhaseHead(SpectralHead):
    """Phase = the direction of a predicted (real, imaginary) pair (APNet's parallel phase estimation)."""

    rows_per_bin = 3

    def polar(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_mag, real, imag = self.out(x).transpose(1, 2).chunk(3, dim=1)  # (B, F, L) each
        norm = torch.sqrt(real.square() + imag.square() + 1e-12)
        return self.magnitude(log_mag), real / norm, imag / norm


HEADS: dict[str, type[SpectralHead]] = {"angle": AngleHead, "parallel": ParallelPhaseHead}


def make_head(config: DecoderConfig) -> SpectralHead:
    return HEADS[config.phase](config)
