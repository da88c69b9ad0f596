"""Multi-period (HiFi-GAN) and multi-resolution (UnivNet/Vocos) discriminators, sized for CPU training. The
multi-resolution ones judge magnitude spectra, or (``complex_spectra``) the real and imaginary parts as two channels
with dilated convolutions along time, as EnCodec's multi-scale STFT discriminator does, so that they see phase.

Each returns, per sub-discriminator, its logits and the list of intermediate feature maps (for feature matching).
Under bf16 autocast their convolutions run in bf16 and return bf16 logits and features; the losses take them to
float32 (``dashtok.train.losses``), and the spectra of the multi-resolution ones stay float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

Outputs = list[tuple[torch.Tensor, list[torch.Tensor]]]


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: int = 16) -> None:
        super().__init__()
        self.period = period
        chans = [1, channels, channels * 2, channels * 4, channels * 4]
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(cin, cout, (5, 1), (3 if i < 3 else 1, 1), padding=(2, 0)))
            for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:], strict=True))])
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """audio (B, T) -> logits (B, frames * period), features [(B * period, C, frames)].

        The (k, 1) kernels of HiFi-GAN's 2-d layout (B, C, T / period, period) never mix the period's columns, so
        they run as 1-d convolutions over the B * period columns: the same function and the same weights (the
        Conv2d modules keep HiFi-GAN's state dict). On this project's CPU, forward + backward of the five on a
        16 x 0.64 s batch (1 thread): 0.16 -> 0.10 s in bf16, 0.20 -> 0.18 s in float32.
        """
        b, t = x.shape
        pad = (-t) % self.period
        x = F.pad(x, (0, pad), mode="reflect").view(b, (t + pad) // self.period, self.period)
        h = x.transpose(1, 2).reshape(b * self.period, 1, -1)  # (B * period, 1, frames)
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(_conv1d(conv, h), 0.1)
            feats.append(h)
        return _conv1d(self.post, h).view(b, self.period, -1).transpose(1, 2).flatten(1), feats


def _conv1d(conv: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """A Conv2d with a (k, 1) kernel applied along the time axis of h (N, C, frames)."""
    assert isinstance(conv, nn.Conv2d)  # weight_norm's parametrized subclass; mypy sees a Module
    return F.conv1d(h, conv.weight.squeeze(-1), conv.bias, stride=conv.stride[0], padding=conv.padding[0])


class ResolutionDiscriminator(nn.Module):
    def __init__(self, n_fft: int, hop: int, channels: int = 16, complex_spectra: bool = False) -> None:
        super().__init__()
        self.n_fft, self.hop, self.complex_spectra = n_fft, hop, complex_spectra
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # complex: (real, imaginary) in, the strided layers dilated 1, 2, 4 along time (frames)
        dilations = (1, 2, 4) if complex_spectra else (1, 1, 1)
        cins = (2 if complex_spectra else 1, channels, channels)
        self.convs = nn.ModuleList([
            *(weight_norm(nn.Conv2d(cin, channels, (3, 9), stride=(1, 2), padding=(d, 4), dilation=(d, 1)))
              for cin, d in zip(cins, dilations, strict=True)),
            weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        window: torch.Tensor = self.window  # type: ignore[assignment]
        spec = torch.stft(x.float(), self.n_fft, self.hop, window=window, return_complex=True)  # (B, bins, frames)
        if self.complex_spectra:
            h = torch.view_as_real(spec).permute(0, 3, 2, 1)  # (B, 2, frames, bins)
        else:
            h = spec.abs().unsqueeze(1).transpose(2, 3)  # (B, 1, frames, bins)
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            feats.append(h)
        return self.post(h).flatten(1), feats


class Discriminators(nn.Module):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11),
                 resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (256, 64)),
                 period_channels: int = 16, complex_spectra: bool = False) -> None:
        super().__init__()
        self.mpd = nn.ModuleList([PeriodDiscriminator(p, period_channels) for p in periods])
        self.mrd = nn.ModuleList([ResolutionDiscriminator(n, h, complex_spectra=complex_spectra)
                                  for n, h in resolutions])

    def forward(self, x: torch.Tensor) -> Outputs:
        """audio (B, T) -> [(logits (B, *), [features])] for every sub-discriminator."""
        return [d(x) for d in self.mpd] + [d(x) for d in self.mrd]


def windows(audio: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """audio (B, T), index (B, L) sample positions (rows of consecutive samples) -> (B, L); None: audio itself.

    The discriminators judge a random window of each training segment: their cost grows with the samples they see,
    while the mel loss keeps the whole segment.
    """
    return audio if index is None else audio.gather(1, index.to(audio.device))


@contextmanager
def frozen(module: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Inside, ``module``'s parameters need no gradient (their weight gradients are never computed; its inputs
    still get theirs); on exit they train again."""
    params = [p for p in module.parameters() if p.requires_grad] if enabled else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
