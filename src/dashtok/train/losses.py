"""Losses of the tokenizer stage: multi-resolution mel L1, linear-STFT log-magnitude L1, anti-wrapped phase losses,
the head's consistency, the output's local mean (DC), hinge GAN, feature matching.

All are computed in float32: discriminator outputs may come in bf16 (autocast) and are cast first.
"""

from __future__ import annotations

import torch

from dashtok.metrics import mel_distance
from dashtok.spectral import ISTFT
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


def dc_loss(real: torch.Tensor, fake: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """How far the output's local mean (Hann-weighted over ``n_fft`` samples every ``hop``: what lies below about
    sr / n_fft Hz, an offset or a slow drift) is from the input's, audio (B, T) each: the mean L1 relative to the
    batch's RMS. Relative to the batch's level, not each item's, as the artifact tone weighs it: an offset in a
    near-silent crop is as small there as it is in the average spectrum (per item, such crops would outweigh the
    rest). The level is floored at -60 dBFS, so that a silent batch does not make this term the whole step.

    The log-magnitude losses see the head's 0 Hz bin only as a magnitude and the phase losses weigh it by the input's
    (small) magnitude there, so nothing told the head the sign of that bin: a magnitude that a 20 Hz hum leaks into
    it became an offset added to every frame alike (the artifact tone at 0 Hz, records/long_run/README.md)."""
    if real.dim() != 2 or fake.shape != real.shape:
        raise ValueError(f"dc_loss takes audio (B, T) twice, not {tuple(real.shape)} and {tuple(fake.shape)}")
    window = torch.hann_window(n_fft, device=real.device)
    means = [torch.stft(x, n_fft, hop, window=window, return_complex=True)[:, 0].real / window.sum()
             for x in (real, fake)]  # bin 0 of a one-sided STFT is real: the window-weighted sum of each frame
    return (means[1] - means[0]).abs().mean() / real.square().mean().sqrt().clamp(min=1e-3)


PHASE_TERMS = ("phase/ip", "phase/gd", "phase/if")


def anti_wrap(d: torch.Tensor) -> torch.Tensor:
    """|d| folded into [0, pi]: the distance of two angles."""
    return torch.abs(d - 2 * torch.pi * torch.round(d / (2 * torch.pi)))


def phase_losses(real: torch.Tensor, fake: torch.Tensor, n_fft: int, hop: int) -> dict[str, torch.Tensor]:
    """The anti-wrapped phase losses of APNet (Ai & Ling, 2023) on one STFT grid (Hann window of n_fft), each an
    average weighted by the real audio's magnitude (per item, then over the batch): ``phase/ip`` the instantaneous
    phase itself, ``phase/gd`` its difference across bins (group delay), ``phase/if`` across frames (instantaneous
    frequency). A phase rotation of the whole signal (a sine for a cosine) costs ``ip`` alone; the differences see the
    phase's structure, which a decoder can infer from magnitudes. Bins where the fake has no energy pass no gradient."""
    window = torch.hann_window(n_fft, device=real.device)
    spec = [torch.stft(x, n_fft, hop, window=window, return_complex=True) for x in (real, fake)]
    some = spec[1].abs() > 1e-7
    fake_phase = torch.where(some, spec[1], torch.ones_like(spec[1])).angle()
    return phase_distances(fake_phase, spec[0].angle(), spec[0].abs())


def phase_distances(fake: torch.Tensor, real: torch.Tensor, magnitude: torch.Tensor,
                    within: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The three terms of :func:`phase_losses` from phases (B, F, L) and the real magnitude (B, F, L) that weighs
    them (normalised per item); ``within`` (B, L - 1), optional, is 0 where frames t and t + 1 are not of one signal
    (the instantaneous-frequency term differences frames)."""
    weight = magnitude / magnitude.sum(dim=(1, 2), keepdim=True).clamp(min=1e-12)
    if_weight = weight[:, :, 1:] if within is None else weight[:, :, 1:] * within[:, None, :]
    terms = {"phase/ip": (weight, anti_wrap(fake - real)),
             "phase/gd": (weight[:, 1:], anti_wrap(torch.diff(fake, dim=1) - torch.diff(real, dim=1))),
             "phase/if": (if_weight, anti_wrap(torch.diff(fake, dim=2) - torch.diff(real, dim=2)))}
    return {k: (w * d).sum(dim=(1, 2)).mean() for k, (w, d) in terms.items()}


def consistency_loss(spectrum: torch.Tensor, audio: torch.Tensor, edge: int = 2) -> torch.Tensor:
    """How far the head's spectrum (B, F, L) is from one that a signal has: the mean distance between it and the
    spectrum of the audio (B, L * hop) made from it (``ISTFT.analysis`` on the head's grid: n_fft = 2 (F - 1), hop
    from the lengths), both compressed as MP-SENet's (magnitude ** 0.3, phase kept), over all but ``edge`` frames at
    each end (those overlap the segment's edges).

    Every other loss sees only the audio, where the inconsistent part of the spectrum cancels in the overlap-add; the
    bundled default's head spectrum keeps 58 % of its energy there (records/long_run/README.md, session 32). Spectra
    that a signal has, at the head's redundancy of 4, tie each frame's phase to its neighbours' and to the magnitudes:
    a phase signal that needs no reference phase."""
    n_fft, hop = 2 * (spectrum.shape[1] - 1), audio.shape[-1] // spectrum.shape[-1]
    again = ISTFT(n_fft, hop).to(audio.device).analysis(audio)
    inner = slice(edge, spectrum.shape[-1] - edge)
    return (_compressed(spectrum[..., inner]) - _compressed(again[..., inner])).abs().mean()


def _compressed(spectrum: torch.Tensor, power: float = 0.3, eps: float = 1e-6) -> torch.Tensor:
    """The complex spectrum with its magnitude raised to ``power`` (eps keeps the gradient finite at 0)."""
    return spectrum * (spectrum.real.square() + spectrum.imag.square() + eps) ** ((power - 1) / 2)


def disc_hinge(real: Outputs, fake: Outputs) -> torch.Tensor:
    return torch.stack([torch.relu(1 - r.float()).mean() + torch.relu(1 + f.float()).mean()
                        for (r, _), (f, _) in zip(real, fake, strict=True)]).mean()


def gen_hinge(fake: Outputs) -> torch.Tensor:
    return torch.stack([torch.relu(1 - f.float()).mean() for f, _ in fake]).mean()


def feature_matching(real: Outputs, fake: Outputs) -> torch.Tensor:
    terms = [(rf.detach().float() - ff.float()).abs().mean() for (_, rfs), (_, ffs) in zip(real, fake, strict=True)
             for rf, ff in zip(rfs, ffs, strict=True)]
    return torch.stack(terms).mean()
