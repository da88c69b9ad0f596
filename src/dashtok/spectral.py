"""Inverse STFT with "same" padding and per-item frame masks; a noisy signal under the gain of a clean estimate.

``torch.istft`` cannot do "same" padding (trim (n_fft - hop) / 2 on both sides) without an envelope check that
fails for it (https://github.com/pytorch/pytorch/issues/62323), so overlap-add is written out with ``fold``, as
Vocos does. A frame mask lets a padded batch produce, on each item's valid samples, exactly what the item gives
alone: masked frames add nothing to the signal *or* to the window envelope.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ISTFT(nn.Module):
    window: torch.Tensor
    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, spec: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """spec (B, n_fft // 2 + 1, L) complex; frame_mask (B, L) bool -> audio (B, L * hop), float32."""
        b, _, n_frames = spec.shape
        pad = (self.n_fft - self.hop_length) // 2
        frames = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        weight = self.window.square()[None, :, None].expand(b, -1, n_frames)
        if frame_mask is not None:
            m = frame_mask[:, None, :].to(frames.dtype)
            frames = frames * m
            weight = weight * m
        size = (n_frames - 1) * self.hop_length + self.n_fft
        fold = dict(output_size=(1, size), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        audio = F.fold(frames, **fold)[:, 0, 0, pad : size - pad]
        envelope = F.fold(weight, **fold)[:, 0, 0, pad : size - pad]
        safe = envelope > 1e-11
        return torch.where(safe, audio / torch.where(safe, envelope, 1.0), 0.0)

    def analysis(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, T) -> complex spectrum (B, n_fft // 2 + 1, T // hop) on this inverse's own frame grid (frame t
        starts at t * hop - (n_fft - hop) / 2; zeros outside the signal), float32.

        ``analysis(forward(S))`` is S's projection onto the spectra that some signal has (the consistent ones):
        equal to S where S is consistent, away from the two frames at each end that overlap the signal's edges.
        """
        pad = (self.n_fft - self.hop_length) // 2
        frames = F.pad(audio.float(), (pad, pad)).unfold(-1, self.n_fft, self.hop_length) * self.window
        return torch.fft.rfft(frames[:, : audio.shape[-1] // self.hop_length], dim=-1).transpose(1, 2)


def masked_by(estimate: torch.Tensor, noisy: torch.Tensor, floor: float, n_fft: int, hop_length: int) -> torch.Tensor:
    """A noisy signal X (T,) under the gain |E| / |X| of an estimate E (T,) of its clean part, clamped to [floor, 1],
    on one Hann-window STFT grid, resynthesised to (T,): E's magnitude where it is below the input's, X's phase
    everywhere. The gain cannot add energy the input lacks, and the floor keeps a little of the input in every bin
    (the classical practice of mask-based enhancement). Float32 on ``estimate``'s device; where the estimate is not
    finite, the gain is the floor."""
    if estimate.shape != noisy.shape or estimate.dim() != 1:
        raise ValueError(f"masked_by takes two 1-D signals of one length, not {tuple(estimate.shape)} and "
                         f"{tuple(noisy.shape)}")
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"the gain's floor must be in [0, 1], not {floor}")
    length = estimate.shape[0]
    window = torch.hann_window(n_fft, device=estimate.device)

    def stft(x: torch.Tensor) -> torch.Tensor:  # clips shorter than a window are zero-padded to one
        x = F.pad(x.float(), (0, max(0, n_fft - length)))
        return torch.stft(x, n_fft, hop_length, window=window, return_complex=True)

    e, x = stft(estimate), stft(noisy.to(estimate.device))
    gain = torch.nan_to_num(e.abs() / x.abs().clamp(min=1e-8), nan=floor).clamp(floor, 1.0)
    return torch.istft(x * gain, n_fft, hop_length, window=window, length=max(length, n_fft))[:length]
