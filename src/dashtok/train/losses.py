"""Losses of the tokenizer stage: multi-resolution mel L1, linear-STFT log-magnitude L1, hinge GAN, feature matching.

All are computed in float32: discriminator outputs may come in bf16 (autocast) and are cast first.
"""

from __future__ import annotations

import torch

from dashtok.metrics import mel_distance
from dashtok.train.discriminators import Outputs


def mel_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean multi-resolution log-mel L1 (the same measure ``dashtok reconstruct`` reports)."""
    return mel_distance(real, fake).mean()


def stft_loss(real: torch.Tensor, fake: torch.Tensor, resolutions: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """Mean L1 of log10 STFT magnitudes (floored at 1e-5, as the mel loss) over (n_fft, hop) ``resolutions``, Hann
    windows of n_fft samples. On the head's grid (1280/320) every output bin is supervised on its own: a stationary
    tone in one bin costs little in a mel band of dozens of bins but its full excess here."""
    total = real.new_zeros(())
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=real.device)
        spec = [torch.stft(x, n_fft, hop, window=window, return_complex=True).abs().clamp(min=1e-5).log10()
                for x in (real, fake)]
        total = total + (spec[0] - spec[1]).abs().mean()
    return total / len(resolutions)


def disc_hinge(real: Outputs, fake: Outputs) -> torch.Tensor:
    return torch.stack([torch.relu(1 - r.float()).mean() + torch.relu(1 + f.float()).mean()
                        for (r, _), (f, _) in zip(real, fake, strict=True)]).mean()


def gen_hinge(fake: Outputs) -> torch.Tensor:
    return torch.stack([torch.relu(1 - f.float()).mean() for f, _ in fake]).mean()


def feature_matching(real: Outputs, fake: Outputs) -> torch.Tensor:
    terms = [(rf.detach().float() - ff.float()).abs().mean() for (_, rfs), (_, ffs) in zip(real, fake, strict=True)
             for rf, ff in zip(rfs, ffs, strict=True)]
    return torch.stack(terms).mean()
