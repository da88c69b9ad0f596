"""Speech enhancement in latent space: noisy-speech latents -> clean-speech latents, decoded by the tokenizer.

A small non-causal transformer on per-channel normalised latents, of one of two kinds:
- ``regression``: one pass predicts a residual on the noisy latents (zero-initialised output, so an untrained
  enhancer is the identity); trained by the MSE to the clean latents, it gives their conditional mean.
- ``flow``: generative; flow matching (``dashtok.generate.flow``, the generator's time convention) of the clean
  latents conditioned on the noisy ones, which enter beside the path's state ``x_t``; enhancing integrates
  ``sample_steps`` Euler steps from seeded noise, so it draws a clean estimate instead of averaging what the noise
  hides.
Tied to the tokenizer it was trained with, like the generator. :meth:`LatentEnhancer.enhance` decodes the enhanced
latents and, by default, applies their decoded magnitude to the noisy input as a gain (``render="mask"``): the
decoder's own phase is the default tokenizer's weak part, and an enhancer has its input's phase at hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dashtok.audio_io import fit_length
from dashtok.codec import as_float_audio
from dashtok.config import check_enhancer
from dashtok.encoder import Block
from dashtok.generate.flow import flow_loss, sample
from dashtok.generate.tied import Tie, bundled_checkpoint, load_tied, require_tokenizer, save_tied
from dashtok.generate.velocity_net import sinusoid
from dashtok.spectral import masked_by
from dashtok.tokenizer import Tokenizer

FORMAT = "dashtok-enhancer/1"
BUNDLED = "enhancer.safetensors"  # trained on the bundled default tokenizer's latents
RENDERS = ("mask", "decoder")  # how the enhanced latents become audio (LatentEnhancer.enhance)
MASK_GRID = (512, 128)  # n_fft, hop of the mask, and its floor: chosen on the validation mixtures
MASK_FLOOR = 0.2  # (records/generation/ab_enhance_phase/)


@dataclass(frozen=True)
class EnhancerConfig:
    latent_dim: int = 192
    dim: int = 256
    depth: int = 4
    heads: int = 4
    kind: str = "regression"  # or "flow" (module docstring)
    sample_steps: int = 8  # flow: Euler steps from noise to the clean latents

    def __post_init__(self) -> None:
        check_enhancer(self.kind, self.sample_steps, "enhancer ")


class LatentEnhancer(nn.Module):
    """forward(noisy (B, N, D) normalised latents, mask (B, N)[, x_t (B, N, D), t (B,)]) -> (B, N, D): the clean
    estimate (regression), or the velocity at ``x_t``, time ``t`` (flow). :meth:`clean_latents` gives the clean
    latents for either kind, :meth:`loss` the training objective."""

    def __init__(self, config: EnhancerConfig, tie: Tie) -> None:
        super().__init__()
        self.config = config
        self.tie = tie  # the tokenizer whose latents it works on
        flow = config.kind == "flow"
        self.inp = nn.Linear(config.latent_dim * (2 if flow else 1), config.dim)
        if flow:  # the path's time, added to every frame
            self.time = nn.Sequential(nn.Linear(config.dim, config.dim), nn.SiLU(), nn.Linear(config.dim, config.dim))
        self.blocks = nn.ModuleList([Block(config.dim, config.heads) for _ in range(config.depth)])
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.out = nn.Linear(config.dim, config.latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.training_record: dict[str, Any] = {}

    def forward(self, noisy: torch.Tensor, mask: torch.Tensor | None = None, x_t: torch.Tensor | None = None,
                t: torch.Tensor | None = None) -> torch.Tensor:
        pos = sinusoid(torch.arange(noisy.shape[1], device=noisy.device), self.config.dim)
        if self.config.kind == "regression":
            h = self.inp(noisy) + pos
        else:
            if x_t is None or t is None:
                raise ValueError("a flow enhancer's forward takes the path's state x_t and time t (clean_latents "
                                 "integrates them)")
            h = self.inp(torch.cat([x_t, noisy], dim=-1)) + pos
            h = h + self.time(sinusoid(t * 1000.0, self.config.dim))[:, None]
        for block in self.blocks:
            h = block(h, mask)
        out = self.out(self.norm(h))
        return noisy + out if self.config.kind == "regression" else out

    def loss(self, noisy: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
             net: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (training loss, the clean estimate of one pass or None): the MSE to the clean latents over the frames
        of ``mask`` (regression; name "enhance/mse"), or the flow-matching MSE of the velocity with noise and times
        drawn from ``gen`` ("enhance/flow"). ``net``: this module wrapped (DDP), called in its place."""
        net = net if net is not None else self
        if self.config.kind == "regression":
            enhanced = net(noisy, mask).float()
            m = mask.to(enhanced.dtype)
            return ((enhanced - clean).square().mean(-1) * m).sum() / m.sum().clamp(min=1), enhanced
        return flow_loss(lambda x, t: net(noisy, mask, x, t), clean, gen, mask), None

    @torch.no_grad()
    def clean_latents(self, noisy: torch.Tensor, mask: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        """Noisy normalised latents (B, N, D) -> the enhanced normalised latents; a flow enhancer draws its noise
        from ``seed`` (the same seed, the same output)."""
        if self.config.kind == "regression":
            return self(noisy, mask)
        noise = torch.randn(noisy.shape, generator=torch.Generator().manual_seed(seed)).to(noisy)
        return sample(lambda x, t: self(noisy, mask, x, t), noise, self.config.sample_steps)

    def save(self, path: str | os.PathLike[str], training: dict[str, Any] | None = None) -> None:
        save_tied(self.state_dict(), self.config, self.tie, FORMAT, path, training or self.training_record)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatentEnhancer:
        config, tie, state, record = load_tied(path, FORMAT, "enhancer", EnhancerConfig)
        model = cls(config, tie)
        model.load_state_dict(state, strict=True)
        model.training_record = record
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None) -> LatentEnhancer:
        """An enhancer checkpoint, or (``None``) the one bundled with the package, for the default tokenizer."""
        return cls.load(bundled_checkpoint(path, BUNDLED, "enhancer", "configs/enhance_small.toml"))

    @torch.no_grad()
    def enhance(self, tokenizer: Tokenizer, audio: np.ndarray, render: str = "mask") -> np.ndarray:
        """Noisy 16 kHz mono audio (T,) -> enhanced audio (T,): :meth:`decode_enhanced`, rendered by
        :func:`render_enhanced` ("mask", the default: the decoded magnitude as a gain on the noisy input; "decoder":
        the decoding itself)."""
        check_render(render)
        audio = mono_signal(audio)
        return render_enhanced(self.decode_enhanced(tokenizer, audio), audio, render)

    @torch.no_grad()
    def decode_enhanced(self, tokenizer: Tokenizer, audio: np.ndarray) -> np.ndarray:
        """Noisy 16 kHz mono audio (T,) -> its enhanced latents decoded by the tokenizer (T,), the decoder's phase."""
        require_tokenizer(tokenizer, self.tie, "enhancer")
        audio = mono_signal(audio)
        z = tokenizer.normalize_latents(tokenizer.encode(audio).latents)
        clean = tokenizer.denormalize_latents(self.clean_latents(z))
        return fit_length(tokenizer.decode(clean).audio[0].cpu().numpy(), len(audio))


def mono_signal(audio: np.ndarray) -> np.ndarray:
    """One signal to enhance -> float32 (T,): integer PCM scaled as encoding scales it (``as_float_audio``), a
    (1, T) batch of one taken as its item; several items or channels are refused (enhance one at a time)."""
    x = as_float_audio(audio)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise ValueError(f"enhance takes one mono signal (T,), got shape {tuple(x.shape)}: enhance items one at a "
                         f"time, and average channels first (wav.mean(axis=1) for soundfile's (frames, channels))")
    return x.numpy()


def check_render(render: str) -> None:
    if render not in RENDERS:
        raise ValueError(f"render must be one of {RENDERS}, not {render!r}")


def render_enhanced(decoded: np.ndarray, noisy: np.ndarray, render: str = "mask") -> np.ndarray:
    """An enhancer's decoded output (:meth:`LatentEnhancer.decode_enhanced`) and its noisy input, both (T,) -> the
    enhanced audio: "decoder" returns the decoding; "mask" applies its magnitude to the noisy input as a gain
    (``dashtok.spectral.masked_by`` with ``MASK_FLOOR`` on ``MASK_GRID``: the noisy phase, no energy the input
    lacks)."""
    check_render(render)
    if render == "decoder":
        return decoded
    estimate, mixture = (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in (decoded, noisy))
    return masked_by(estimate, mixture, MASK_FLOOR, *MASK_GRID).numpy()


def wiener_baseline(noisy: np.ndarray, n_fft: int = 512, hop: int = 128, noise_quantile: float = 0.1) -> np.ndarray:
    """A classical reference: Wiener-style gain with the noise spectrum taken from the quietest 10 % of frames."""
    x = torch.from_numpy(np.asarray(noisy, dtype=np.float32))
    window = torch.hann_window(n_fft)
    spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)  # (F, T)
    power = spec.abs().square()
    energy = power.sum(0)
    quiet = energy <= torch.quantile(energy, noise_quantile)
    noise = power[:, quiet].mean(1, keepdim=True)
    gain = torch.clamp(1 - noise / power.clamp(min=1e-12), min=0.1)
    y = torch.istft(spec * gain, n_fft, hop, window=window, length=len(x))
    return y.numpy()
