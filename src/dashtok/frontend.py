"""Pure-torch mel front ends: Dasheng's dB mel, and the STFT/mel pieces the acoustic injection reuses.

``MelSpectrogram`` is numerically equal to ``torchaudio.transforms.MelSpectrogram`` (power 2 for Dasheng, power 1
for the injection's magnitude mel) and ``AmplitudeToDB`` to torchaudio's ``AmplitudeToDB(top_db=120)``: both are
checked against golden fixtures made with torchaudio (``tests/fixtures``), without depending on it, within float32
rounding on every CPU kernel path (bit for bit on the CPU that made them).
Buffer names (``spectrogram.window``, ``mel_scale.fb``) follow torchaudio so upstream checkpoints load unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from dashtok.config import FrontendConfig


def _hz_to_mel_htk(freq: float) -> float:
    return 2595.0 * math.log10(1.0 + freq / 700.0)


def _mel_to_hz_htk(mels: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """Triangular HTK mel filterbank without area normalisation, (n_freqs, n_mels) (torchaudio's layout)."""
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_pts = torch.linspace(_hz_to_mel_htk(f_min), _hz_to_mel_htk(f_max), n_mels + 2)
    f_pts = _mel_to_hz_htk(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0)


class Spectrogram(nn.Module):
    """Centred (reflect-padded) STFT magnitude to ``power``, computed in blocks of frames so long inputs use
    bounded memory."""

    window: torch.Tensor

    def __init__(self, n_fft: int, win_length: int, hop_length: int, power: float,
                 block_frames: int = 16384, persistent: bool = True) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.power = power
        self.block_frames = block_frames
        self.register_buffer("window", torch.hann_window(win_length), persistent=persistent)

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.hop_length + 1

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav (B, T) -> |STFT| ** power (B, n_fft // 2 + 1, 1 + T // hop), computed in blocks of frames."""
        n, total, step = wav.shape[-1], self.num_frames(wav.shape[-1]), self.block_frames
        blocks = [self.frames_of(lambda a, b: wav[..., a:b], n, f0, min(total, f0 + step))
                  for f0 in range(0, total, step)]
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)

    def frames_of(self, read: Callable[[int, int], torch.Tensor], num_samples: int, f0: int, f1: int
                  ) -> torch.Tensor:
        """Frames [f0, f1) of the centred STFT of a signal of ``num_samples`` samples that ``read(a, b)`` returns
        piecewise ((..., b - a) samples [a, b)): exactly ``forward(whole)[..., f0:f1]``, reading only the samples
        those frames see. The signal is reflect-padded at its true ends only, as torch.stft(center=True) does."""
        pad = self.n_fft // 2
        if num_samples <= pad:
            raise ValueError(f"input of {num_samples} samples is too short for a centred STFT (needs > {pad})")
        n = num_samples
        a, b = f0 * self.hop_length - pad, (f1 - 1) * self.hop_length - pad + self.n_fft  # samples [a, b) of the
        lpad, rpad = max(0, -a), max(0, b - n)  # padded signal; reflections reach lpad and n - 1 - rpad, so read
        lo, hi = max(0, min(a, n - 1 - rpad)), min(n, max(b, lpad + 1))  # those too (a block of only the last
        segment = read(lo, hi)  # frame would otherwise hold too few samples to reflect), then cut [a, b) out
        shape = segment.shape[:-1]
        segment = torch.nn.functional.pad(segment.reshape(-1, 1, segment.shape[-1]), (lpad, rpad), mode="reflect")
        segment = segment[..., max(a, 0) - lo :][..., : b - a]
        spec = torch.stft(segment.reshape(-1, segment.shape[-1]), self.n_fft, self.hop_length, self.win_length,
                          self.window, center=False, normalized=False, onesided=True, return_complex=True)
        spec = spec.reshape(*shape, *spec.shape[-2:])
        # torchaudio: abs() for power 1, abs().pow(p) otherwise (bit for bit)
        return spec.abs() if self.power == 1.0 else spec.abs().pow(self.power)


class MelScale(nn.Module):
    fb: torch.Tensor

    def __init__(self, n_fft: int, f_min: float, f_max: float, n_mels: int, sample_rate: int,
                 persistent: bool = True) -> None:
        super().__init__()
        self.register_buffer("fb", mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate),
                             persistent=persistent)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """spec (B, F, T) -> mel (B, n_mels, T)."""
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    """torchaudio.transforms.MelSpectrogram (HTK scale, no filterbank norm, centred, reflect padding).

    ``persistent=False`` keeps the window and filterbank (derived from the arguments) out of the state dict."""

    def __init__(self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int,
                 f_min: float, f_max: float, power: float, persistent: bool = True) -> None:
        super().__init__()
        self.spectrogram = Spectrogram(n_fft, win_length, hop_length, power, persistent=persistent)
        self.mel_scale = MelScale(n_fft, f_min, f_max, n_mels, sample_rate, persistent=persistent)

    @classmethod
    def dasheng(cls, config: FrontendConfig, persistent: bool = True) -> MelSpectrogram:
        """The semantic encoder's power mel."""
        return cls(config.sample_rate, config.n_fft, config.win_length, config.hop_length, config.n_mels,
                   config.f_min, config.f_max, power=2.0, persistent=persistent)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav (B, T) -> mel (B, n_mels, 1 + T // hop)."""
        return self.mel_scale(self.spectrogram(wav))

    def frames_of(self, read: Callable[[int, int], torch.Tensor], num_samples: int, f0: int, f1: int
                  ) -> torch.Tensor:
        """Mel frames [f0, f1) of a signal read piecewise (see ``Spectrogram.frames_of``)."""
        return self.mel_scale(self.spectrogram.frames_of(read, num_samples, f0, f1))


def per_item_frames(fn: Callable[[torch.Tensor], torch.Tensor], wav: torch.Tensor, lengths: torch.Tensor,
                    hop_length: int) -> torch.Tensor:
    """Run a centred front end ``fn`` (B, T) -> (B, C, 1 + T // hop) on each item of a padded batch alone.

    Each item's STFT then sees its own end (reflect padding there, not the batch's zeros), so a padded batch equals
    its items run one at a time; frames past an item's end are zeros. Equal-length batches run in one call.
    """
    b, t = wav.shape
    if bool((lengths == t).all()):
        return fn(wav)
    frames = 1 + t // hop_length
    items = [fn(wav[i : i + 1, : int(n)]) for i, n in enumerate(lengths)]
    return torch.cat([nn.functional.pad(m, (0, frames - m.shape[-1])) for m in items])


class AmplitudeToDB(nn.Module):
    """Power -> dB with a ``top_db`` floor; ``scope`` says over what the maximum is taken (see FrontendConfig)."""

    amin = 1e-10

    def __init__(self, config: FrontendConfig) -> None:
        super().__init__()
        self.top_db = config.top_db
        self.scope = config.top_db_scope

    def forward(self, mel: torch.Tensor, peak: torch.Tensor | None = None) -> torch.Tensor:
        """mel (B, n_mels, T) power -> (B, n_mels, T) dB, floored at ``peak - top_db``; ``peak`` (B,) is the dB
        maximum of each clip (or of the batch, by scope) unless given (a long recording read in pieces)."""
        db = self.db(mel)
        if peak is None:
            peak = db.amax().expand(db.shape[0]) if self.scope == "batch" else db.flatten(1).amax(dim=1)
        return torch.maximum(db, (peak - self.top_db).view(-1, 1, 1))

    def db(self, mel: torch.Tensor) -> torch.Tensor:
        """Power -> dB, before the floor."""
        return 10.0 * torch.log10(torch.clamp(mel, min=self.amin))
