"""Reconstruction measures used by ``dashtok reconstruct``, the evaluation and the training losses.

Pure torch: SI-SDR and a multi-resolution log-mel distance. PESQ, STOI, DNSMOS (``speechmos``, its ONNX models ship
inside the package) and speaker similarity (``Resemblyzer``, its weights ship inside too) come from the optional
``eval`` extra; without them those entries are None, never a made-up number.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from dashtok.frontend import mel_filterbank


@dataclass(frozen=True)
class MelResolution:
    n_fft: int
    hop_length: int
    n_mels: int


# Three resolutions spanning 32 ms to 128 ms windows at 16 kHz.
MEL_RESOLUTIONS = (MelResolution(512, 128, 64), MelResolution(1024, 256, 80), MelResolution(2048, 512, 128))


def _as_batch(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
    return t.unsqueeze(0) if t.ndim == 1 else t


def log_mel(x: torch.Tensor, res: MelResolution, sample_rate: int) -> torch.Tensor:
    """x (B, T) -> log10 mel magnitude (B, n_mels, frames), floored at 1e-5.

    A signal of at most half a window (shorter than the centred STFT's reflection padding) is zero-padded to just
    over half a window first, so that a few-ms clip is scored rather than refused."""
    if x.shape[-1] <= res.n_fft // 2:
        x = torch.nn.functional.pad(x, (0, res.n_fft // 2 + 1 - x.shape[-1]))
    window = torch.hann_window(res.n_fft, device=x.device)
    spec = torch.stft(x, res.n_fft, res.hop_length, window=window, center=True, return_complex=True).abs()
    fb = mel_filterbank(res.n_fft // 2 + 1, 0.0, sample_rate / 2, res.n_mels, sample_rate).to(x.device)
    return torch.log10(torch.clamp(torch.matmul(spec.transpose(1, 2), fb), min=1e-5)).transpose(1, 2)


def mel_distance(reference: torch.Tensor | np.ndarray, estimate: torch.Tensor | np.ndarray,
                 sample_rate: int = 16000) -> torch.Tensor:
    """Mean L1 distance of log10-mel magnitudes over :data:`MEL_RESOLUTIONS`; (B,) (0 for identical signals).

    Differentiable, so training uses it as its reconstruction loss.
    """
    ref, est = _as_batch(reference), _as_batch(estimate)
    n = min(ref.shape[-1], est.shape[-1])
    if n == 0:
        raise ValueError("mel_distance of an empty signal")
    ref, est = ref[..., :n], est[..., :n]
    total = torch.zeros(ref.shape[0], device=ref.device)
    for res in MEL_RESOLUTIONS:
        total = total + (log_mel(ref, res, sample_rate) - log_mel(est, res, sample_rate)).abs().mean(dim=(1, 2))
    return total / len(MEL_RESOLUTIONS)


def si_sdr(reference: torch.Tensor | np.ndarray, estimate: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, (B,). Both signals are made zero-mean first."""
    ref, est = _as_batch(reference).double(), _as_batch(estimate).double()
    n = min(ref.shape[-1], est.shape[-1])
    ref, est = ref[..., :n], est[..., :n]
    ref = ref - ref.mean(dim=-1, keepdim=True)
    est = est - est.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + 1e-12)
    target = scale * ref
    noise = est - target
    return (10 * torch.log10(target.square().sum(-1) / (noise.square().sum(-1) + 1e-12) + 1e-12)).float()


SPEECH_MEASURES = {"pesq_wb": lambda r, e, sr: pesq_wb(r, e, sr), "pesq_nb": lambda r, e, sr: pesq_nb(r, e, sr),
                   "stoi": lambda r, e, sr: stoi(r, e, sr)}


def speech_scores(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000,
                  measures: tuple[str, ...] = ("pesq_wb", "stoi")) -> dict[str, float]:
    """The intrusive speech measures (names of ``SPEECH_MEASURES``) that apply to this pair. PESQ refuses some
    signals (e.g. "no utterance detected") and a measure whose package is missing gives None: both are left out of
    the row rather than scored."""
    row = {}
    for key in measures:
        try:
            value = SPEECH_MEASURES[key](reference, estimate, sample_rate)
        except Exception:  # the pesq package raises its own error types for signals it refuses
            value = None
        if value is not None:
            row[key] = value
    return row


def reconstruction_scores(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000,
                          speech: bool = True, speech_measures: tuple[str, ...] = ("pesq_wb", "stoi")
                          ) -> dict[str, float]:
    """What a reconstruction is scored with everywhere (evaluation, training validation, reference codecs): mel
    distance and SI-SDR, and on speech the intrusive speech measures that apply (``speech_scores``)."""
    row = {"mel_distance": float(mel_distance(reference, estimate, sample_rate)[0]),
           "si_sdr": float(si_sdr(reference, estimate)[0])}
    if speech:
        row.update(speech_scores(reference, estimate, sample_rate, speech_measures))
    return row


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000) -> float | None:
    """Wide-band PESQ (ITU-T P.862.2), or None when the ``pesq`` package is not installed."""
    return _pesq(reference, estimate, sample_rate, "wb")


def pesq_nb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000) -> float | None:
    """Narrow-band PESQ (ITU-T P.862, MOS-LQO), or None when the ``pesq`` package is not installed."""
    return _pesq(reference, estimate, sample_rate, "nb")


# The pesq package crashes the process (a segmentation fault in its C code) on inputs past roughly 150 s (seen at
# 183 s; 140 s passed), and P.862 was specified for clips of 8-30 s: longer inputs are scored in equal windows.
PESQ_WHOLE_SECONDS = 60.0
PESQ_WINDOW_SECONDS = 30.0


def _pesq(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, mode: str) -> float | None:
    """PESQ of the whole pair up to ``PESQ_WHOLE_SECONDS``; past that, the length-weighted mean over equal windows of
    at most ``PESQ_WINDOW_SECONDS`` (windows PESQ refuses, e.g. silence, are left out; all refused: it raises)."""
    try:
        from pesq import pesq
    except ImportError:
        return None
    n = min(len(reference), len(estimate))
    ref, est = np.asarray(reference[:n], dtype=np.float64), np.asarray(estimate[:n], dtype=np.float64)
    if n <= PESQ_WHOLE_SECONDS * sample_rate:
        return float(pesq(sample_rate, ref, est, mode))
    bounds = np.linspace(0, n, int(np.ceil(n / (PESQ_WINDOW_SECONDS * sample_rate))) + 1).astype(int)
    scores, weights, last_error = [], [], None
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        try:
            scores.append(float(pesq(sample_rate, ref[a:b], est[a:b], mode)))
            weights.append(b - a)
        except Exception as err:  # the pesq package raises its own types (no utterance detected, ...)
            last_error = err
    if not scores:
        raise ValueError(f"PESQ refused every {PESQ_WINDOW_SECONDS:.0f} s window ({last_error})")
    return float(np.average(scores, weights=weights))


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000) -> float | None:
    """Short-time objective intelligibility, or None when the ``pystoi`` package is not installed, and where the
    reference is silent or has too little non-silent audio for it (under about 0.4 s: pystoi warns and returns 1e-5
    there), as PESQ refuses silence."""
    try:
        from pystoi import stoi as _stoi
    except ImportError:
        return None
    n = min(len(reference), len(estimate))
    if not np.any(reference[:n]):
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(np.asarray(reference[:n], dtype=np.float64), np.asarray(estimate[:n], dtype=np.float64),
                            sample_rate, extended=False))
    unscored = False
    for w in caught:  # pystoi's "cannot score this" becomes None; any other warning is passed on as it was
        if "Not enough STFT frames" in str(w.message):
            unscored = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return None if unscored else value


def dnsmos(audio: np.ndarray, sample_rate: int = 16000) -> dict[str, float] | None:
    """DNSMOS P.835 (signal, background, overall) and P.808 MOS of one 16 kHz clip, or None without speechmos."""
    try:
        from speechmos import dnsmos as _dnsmos
    except ImportError:
        return None
    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    r = _dnsmos.run(x, sample_rate)
    return {"ovrl": float(r["ovrl_mos"]), "sig": float(r["sig_mos"]), "bak": float(r["bak_mos"]),
            "p808": float(r["p808_mos"])}


@lru_cache(maxsize=1)
def _voice_encoder() -> object:
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def speaker_similarity(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000) -> float | None:
    """Cosine similarity of Resemblyzer speaker embeddings (1 = same voice), or None without Resemblyzer."""
    try:
        with warnings.catch_warnings():  # its webrtcvad imports the deprecated pkg_resources: not the user's concern
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            from resemblyzer import preprocess_wav
    except ImportError:
        return None
    enc = _voice_encoder()
    a = enc.embed_utterance(preprocess_wav(np.asarray(reference, dtype=np.float32), sample_rate))  # type: ignore
    b = enc.embed_utterance(preprocess_wav(np.asarray(estimate, dtype=np.float32), sample_rate))  # type: ignore
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class AverageSpectrum:
    """The average power spectrum of many signals (Hann-windowed frames of ``n_fft`` samples, half overlapping):
    what stationary artifacts (a tone, a DC offset) stand out in, since they add up while content averages out."""

    def __init__(self, n_fft: int = 4096) -> None:
        self.n_fft = n_fft
        self.total = np.zeros(n_fft // 2 + 1)
        self.frames = 0

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if len(x) < self.n_fft:
            x = np.pad(x, (0, self.n_fft - len(x)))
        hop = self.n_fft // 2
        frames = np.lib.stride_tricks.sliding_window_view(x, self.n_fft)[::hop]
        self.total += (np.abs(np.fft.rfft(frames * np.hanning(self.n_fft), axis=1)) ** 2).sum(axis=0)
        self.frames += len(frames)

    def db(self) -> np.ndarray:
        return 10 * np.log10(self.total / max(self.frames, 1) + 1e-20)


def peakiness_db(spectrum_db: np.ndarray, half_width: int = 16) -> np.ndarray:
    """How far each bin stands above the median of its neighbours (``half_width`` bins each side, itself excluded),
    in dB: about 0 for smooth spectra, large for a bin holding a stationary tone."""
    n = len(spectrum_db)
    out = np.empty(n)
    for i in range(n):
        lo, hi = max(0, i - half_width), min(n, i + half_width + 1)
        neighbours = np.concatenate([spectrum_db[lo:i], spectrum_db[i + 1 : hi]])
        out[i] = spectrum_db[i] - np.median(neighbours)
    return out


def artifact_tone(inputs: AverageSpectrum, outputs: AverageSpectrum, sample_rate: int = 16000
                  ) -> dict[str, float]:
    """The largest excess of a bin's peakiness in the outputs' average spectrum over the inputs' (dB), and its
    frequency (Hz): a tone or DC offset that the codec adds to every reconstruction shows here; 0 dB for none."""
    excess = tone_excess_db(inputs, outputs)
    i = int(np.argmax(excess))
    return {"db": round(float(excess[i]), 2), "hz": round(i * sample_rate / inputs.n_fft, 1)}


def tone_excess_db(inputs: AverageSpectrum, outputs: AverageSpectrum) -> np.ndarray:
    """Every bin's peakiness in the outputs' average spectrum less its peakiness in the inputs' (dB)."""
    return peakiness_db(outputs.db()) - peakiness_db(inputs.db())


def dc_tone_db(inputs: AverageSpectrum, outputs: AverageSpectrum) -> float:
    """The excess of bin 0 (dB, as :func:`artifact_tone`'s): a DC offset the codec adds; about 0 dB for none."""
    return round(float(tone_excess_db(inputs, outputs)[0]), 2)
