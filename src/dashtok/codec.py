"""The codec contract: what generators, evaluation, training stages and the CLI need of a model that turns audio
into latents and back. :class:`dashtok.Tokenizer` implements it, and so does the mel-VAE baseline
(``dashtok.baselines.vae``).

Shapes (B items, T samples at ``sample_rate``, N latent frames at ``frame_rate``, D = ``latent_dim``):

    encode(wav (T,) | (B, T) | (B, C, T), lengths (B,) samples | None, sample_rate | None)
        -> EncodeOutput(latents (B, N, D), lengths (B,) frames)        N = frames of the longest item
    decode(latents (N, D) | (B, N, D), lengths (B,) frames | None)
        -> DecodeOutput(audio (B, N * hop_length), lengths (B,) samples = frames * hop_length)
    normalize_latents(latents (..., D)) -> per-channel standardised latents (what generators are trained on)

Frames past an item's length are zeros in latents and audio. ``model_id`` (``name@weights-hash``) names the weights,
so that files and models made from latents (latent files, generators, enhancers) can refuse another codec.
This module also holds the input validation every codec shares, and the one encode -> decode -> trim.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from dashtok.audio_io import fit_length, resample
from dashtok.masking import lengths_to_mask

ArrayLike = torch.Tensor | np.ndarray | Sequence[Any]  # lists too (lengths=[16000, 8000])


class _Fields:
    """Key access beside attribute access (``out["latents"]``, ``out.keys()``), as the ecosystem's codec outputs
    allow."""

    def __getitem__(self, key: str) -> torch.Tensor | None:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)  # type: ignore[no-any-return]

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:  # the keys, as a mapping's
        return iter(self.keys())


@dataclass
class EncodeOutput(_Fields):
    latents: torch.Tensor  # (B, N, D); frames past a length are zeros
    lengths: torch.Tensor  # (B,) valid frames
    semantic: torch.Tensor | None = None  # (B, N, D) the frozen encoder's features, when asked for (tokenizer only)


@dataclass
class DecodeOutput(_Fields):
    audio: torch.Tensor  # (B, T) at sample_rate; samples past a length are zeros
    lengths: torch.Tensor  # (B,) valid samples = frames * hop_length


class NormalizesLatents:
    """``normalize_latents`` / ``denormalize_latents`` of a codec that keeps per-channel statistics of its latents
    (buffers ``latent_mean`` and ``latent_std``, (D,)); the one implementation the tokenizer and the VAE share."""

    latent_mean: torch.Tensor
    latent_std: torch.Tensor

    def normalize_latents(self, latents: ArrayLike) -> torch.Tensor:
        """(…, D) -> per-channel standardised latents (what generators are trained on)."""
        return (self._latents(latents) - self.latent_mean) / self.latent_std

    def denormalize_latents(self, latents: ArrayLike) -> torch.Tensor:
        """The inverse of ``normalize_latents``."""
        return self._latents(latents) * self.latent_std + self.latent_mean

    def _latents(self, latents: ArrayLike) -> torch.Tensor:
        """A tensor as it is (its graph kept), an array as float32 on the statistics' device; the width checked."""
        z = latents if isinstance(latents, torch.Tensor) else \
            torch.as_tensor(np.asarray(latents, dtype=np.float32), device=self.latent_mean.device)
        if z.ndim == 0 or z.shape[-1] != self.latent_mean.shape[-1]:
            raise ValueError(f"latents must be (..., {self.latent_mean.shape[-1]}) for this model, got shape "
                             f"{tuple(z.shape)}")
        return z


class Codec(Protocol):
    """Audio <-> continuous latents; see the module docstring for the shape contract."""

    @property
    def sample_rate(self) -> int: ...
    @property
    def frame_rate(self) -> float: ...
    @property
    def hop_length(self) -> int: ...
    @property
    def latent_dim(self) -> int: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def min_num_samples(self) -> int: ...  # the shortest input that gives one latent frame
    model_id: str

    def encode(self, wav: ArrayLike, lengths: ArrayLike | None = None,
               sample_rate: int | None = None) -> EncodeOutput: ...

    def decode(self, latents: ArrayLike, lengths: ArrayLike | None = None) -> DecodeOutput: ...

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor: ...

    def denormalize_latents(self, latents: torch.Tensor) -> torch.Tensor: ...

    def eval(self) -> Codec: ...

    def train(self, mode: bool = True) -> Codec: ...


def _few(values: list[int], k: int = 5) -> str:
    """A list for an error message, at most ``k`` values however many there are."""
    return str(values) if len(values) <= k else f"{str(values[:k])[:-1]}, ... ({len(values)} in all)]"


def as_float_audio(wav: ArrayLike) -> torch.Tensor:
    """A float32 CPU tensor of ``wav``; integer PCM is scaled to [-1, 1) (int16 / 32768, int32 / 2**31, int8 / 128,
    uint8 (x - 128) / 128, as WAV files store them); booleans and complex values are refused."""
    x = wav if isinstance(wav, torch.Tensor) else torch.as_tensor(np.asarray(wav))
    x = x.detach().cpu()
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"audio must be real numbers, got dtype {x.dtype}")
    if x.dtype == torch.uint8:
        return (x.float() - 128.0) / 128.0
    if not x.is_floating_point():
        full_scale = {torch.int8: 2.0**7, torch.int16: 2.0**15, torch.int32: 2.0**31}.get(x.dtype)
        if full_scale is None:
            raise ValueError(f"audio of integer dtype {x.dtype}: use float, or int8/int16/int32 PCM")
        return (x.double() / full_scale).float()
    return x.float()


def prepare_audio(wav: ArrayLike, lengths: ArrayLike | None, sample_rate: int | None, model_rate: int,
                  min_num_samples: int, frame_ms: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and normalise ``encode``'s audio input -> (wav (B, T) float32 at ``model_rate``, lengths (B,)).

    Channels are averaged to mono, other sample rates resampled with soxr, integer PCM scaled (``as_float_audio``).
    Empty audio, badly shaped arrays, NaN/Inf and items shorter than one frame (``min_num_samples``) raise a
    ``ValueError`` of a few lines at most saying which.
    """
    x = as_float_audio(wav)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    elif x.ndim == 3:
        x = x.mean(dim=1)  # (B, C, T) -> mono
    if x.ndim != 2:
        raise ValueError(f"audio must be (T,), (B, T) or (B, C, T), got shape {tuple(x.shape)}")
    b, t = x.shape
    if b == 0 or t == 0:
        raise ValueError(f"audio is empty (shape {tuple(x.shape)})")
    sr = model_rate if sample_rate is None else int(sample_rate)
    if sr <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    too_short = t * model_rate < min_num_samples * sr  # under one frame once at the model's rate
    if too_short and b * model_rate >= min_num_samples * sr:  # soundfile.read's (frames, channels), most likely
        raise ValueError(f"audio of shape {tuple(x.shape)} reads as {b} items of {t} samples each; arrays are "
                         f"(T,), (B, T) or (B, C, T): pass soundfile's (frames, channels) as one item, wav.T[None] "
                         f"(channels averaged), or wav.mean(axis=1); wav.T alone is {t} items, one per channel")
    lens = torch.full((b,), t, dtype=torch.long) if lengths is None else \
        torch.as_tensor(lengths, dtype=torch.long).reshape(-1).cpu()
    if lens.shape[0] != b or bool((lens <= 0).any()) or bool((lens > t).any()):
        raise ValueError(f"lengths must be {b} values in [1, {t}], got {_few(lens.tolist())}")
    bad = [i for i in range(b) if not bool(torch.isfinite(x[i, : lens[i]]).all())]
    if bad:
        raise ValueError(f"audio item(s) {_few(bad)} contain NaN or Inf")
    if sr != model_rate:
        items = [torch.from_numpy(resample(x[i, : lens[i]].numpy(), sr, model_rate)) for i in range(b)]
        lens = torch.tensor([len(it) for it in items], dtype=torch.long)
        x = torch.stack([nn.functional.pad(it, (0, int(lens.max()) - len(it))) for it in items])
    short = [i for i in range(b) if int(lens[i]) < min_num_samples]
    if short:
        raise ValueError(f"audio item(s) {_few(short)} shorter than one {frame_ms:.0f} ms frame "
                         f"(need >= {min_num_samples} samples at {model_rate} Hz)")
    return x.to(device), lens.to(device)


def validate_latents(latents: ArrayLike, lengths: ArrayLike | None, latent_dim: int,
                     device: torch.device, allow_empty: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``decode``'s input -> (latents (B, N, D) float32, lengths (B,) frames). Wrong shapes, lengths out of
    range, NaN/Inf on valid frames and (unless ``allow_empty``: a stream's piece may be) no frames at all raise a
    ``ValueError`` saying which."""
    z = torch.as_tensor(latents, dtype=torch.float32, device=device)
    if z.ndim == 2:
        z = z.unsqueeze(0)
    if z.ndim != 3 or z.shape[-1] != latent_dim:
        raise ValueError(f"latents must be (N, {latent_dim}) or (B, N, {latent_dim}) for this model, "
                         f"got shape {tuple(z.shape)}")
    b, n, _ = z.shape
    if (b == 0 or n == 0) and not allow_empty:
        raise ValueError(f"latents are empty (shape {tuple(z.shape)}): decoding needs at least one frame")
    lens = torch.full((b,), n, dtype=torch.long, device=device) if lengths is None else \
        torch.as_tensor(lengths, dtype=torch.long, device=device).reshape(-1)
    if lens.shape[0] != b or bool((lens < 0).any()) or bool((lens > n).any()):
        raise ValueError(f"lengths must be {b} values in [0, {n}], got {_few(lens.tolist())}")
    valid = lengths_to_mask(lens, n).unsqueeze(-1)
    if not bool(torch.isfinite(z).logical_or(~valid).all()):
        raise ValueError("latents contain NaN or Inf")
    return z, lens


def reconstruct(codec: Codec, audio: np.ndarray) -> np.ndarray:
    """One clip (T,) at the codec's rate -> encode -> decode -> (T,) trimmed (or zero-padded) to its length."""
    return fit_length(codec.decode(codec.encode(audio).latents).audio[0].cpu().numpy(), len(audio))
