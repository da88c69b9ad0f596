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

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from dashtok.audio_io import fit_length, resample
from dashtok.masking import lengths_to_mask

ArrayLike = torch.Tensor | np.ndarray


@dataclass
class EncodeOutput:
    latents: torch.Tensor  # (B, N, D); frames past a length are zeros
    lengths: torch.Tensor  # (B,) valid frames
    semantic: torch.Tensor | None = None  # (B, N, D) the frozen encoder's features, when asked for (tokenizer only)


@dataclass
class DecodeOutput:
    audio: torch.Tensor  # (B, T) at sample_rate; samples past a length are zeros
    lengths: torch.Tensor  # (B,) valid samples = frames * hop_length


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


def prepare_audio(wav: ArrayLike, lengths: ArrayLike | None, sample_rate: int | None, model_rate: int,
                  min_num_samples: int, frame_ms: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and normalise ``encode``'s audio input -> (wav (B, T) float32 at ``model_rate``, lengths (B,)).

    Channels are averaged to mono, other sample rates resampled with soxr. Empty audio, badly shaped arrays,
    NaN/Inf and items shorter than one frame (``min_num_samples``) raise a ``ValueError`` saying which.
    """
    x = torch.as_tensor(np.asarray(wav) if not isinstance(wav, torch.Tensor) else wav).float().cpu()
    if x.ndim == 1:
        x = x.unsqueeze(0)
    elif x.ndim == 3:
        x = x.mean(dim=1)  # (B, C, T) -> mono
    if x.ndim != 2:
        raise ValueError(f"audio must be (T,), (B, T) or (B, C, T), got shape {tuple(x.shape)}")
    b, t = x.shape
    if b == 0 or t == 0:
        raise ValueError(f"audio is empty (shape {tuple(x.shape)})")
    lens = torch.full((b,), t, dtype=torch.long) if lengths is None else \
        torch.as_tensor(lengths, dtype=torch.long).reshape(-1).cpu()
    if lens.shape[0] != b or bool((lens <= 0).any()) or bool((lens > t).any()):
        raise ValueError(f"lengths must be {b} values in [1, {t}], got {lens.tolist()}")
    for i in range(b):
        if not bool(torch.isfinite(x[i, : lens[i]]).all()):
            raise ValueError(f"audio item {i} contains NaN or Inf")
    sr = model_rate if sample_rate is None else int(sample_rate)
    if sr != model_rate:
        items = [torch.from_numpy(resample(x[i, : lens[i]].numpy(), sr, model_rate)) for i in range(b)]
        lens = torch.tensor([len(it) for it in items], dtype=torch.long)
        x = torch.stack([nn.functional.pad(it, (0, int(lens.max()) - len(it))) for it in items])
    short = [i for i in range(b) if int(lens[i]) < min_num_samples]
    if short:
        raise ValueError(f"audio item(s) {short} shorter than one {frame_ms:.0f} ms frame "
                         f"(need >= {min_num_samples} samples at {model_rate} Hz)")
    return x.to(device), lens.to(device)


def validate_latents(latents: ArrayLike, lengths: ArrayLike | None, latent_dim: int,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``decode``'s input -> (latents (B, N, D) float32, lengths (B,) frames). Wrong shapes, lengths out of
    range and NaN/Inf on valid frames raise a ``ValueError`` saying which."""
    z = torch.as_tensor(latents, dtype=torch.float32, device=device)
    if z.ndim == 2:
        z = z.unsqueeze(0)
    if z.ndim != 3 or z.shape[-1] != latent_dim:
        raise ValueError(f"latents must be (N, {latent_dim}) or (B, N, {latent_dim}) for this model, "
                         f"got shape {tuple(z.shape)}")
    b, n, _ = z.shape
    lens = torch.full((b,), n, dtype=torch.long, device=device) if lengths is None else \
        torch.as_tensor(lengths, dtype=torch.long, device=device).reshape(-1)
    if lens.shape[0] != b or bool((lens < 0).any()) or bool((lens > n).any()):
        raise ValueError(f"lengths must be {b} values in [0, {n}], got {lens.tolist()}")
    valid = lengths_to_mask(lens, n).unsqueeze(-1)
    if not bool(torch.isfinite(z).logical_or(~valid).all()):
        raise ValueError("latents contain NaN or Inf")
    return z, lens


def reconstruct(codec: Codec, audio: np.ndarray) -> np.ndarray:
    """One clip (T,) at the codec's rate -> encode -> decode -> (T,) trimmed (or zero-padded) to its length."""
    return fit_length(codec.decode(codec.encode(audio).latents).audio[0].cpu().numpy(), len(audio))
