"""DashengTokenizer: frozen Dasheng features + one linear acoustic injection -> continuous 25 Hz latents,
decoded by a Vocos-style decoder back to 16 kHz audio."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dashtok.config import TokenizerConfig, TopDbScope
from dashtok.decoder import VocosDecoder
from dashtok.encoder import DashengEncoder
from dashtok.head import ISTFTHead
from dashtok.injection import AcousticInjection
from dashtok.masking import lengths_to_mask
from dashtok.precision import autocast_for
from dashtok.streaming import context_frames

ArrayLike = torch.Tensor | np.ndarray


@dataclass
class EncodeOutput:
    latents: torch.Tensor  # (B, N, D): semantic + injection (or the semantic features alone when asked)
    lengths: torch.Tensor  # (B,) valid frames; frames past a length are zeros
    semantic: torch.Tensor | None = None  # (B, N, D) frozen encoder features, when return_semantic=True


@dataclass
class DecodeOutput:
    audio: torch.Tensor  # (B, T) at sample_rate; samples past a length are zeros
    lengths: torch.Tensor  # (B,) valid samples = frames * hop_length


@dataclass
class Features:
    """Differentiable intermediate results of encoding a batch (what training needs)."""

    semantic: torch.Tensor  # (B, N, D) frozen encoder output
    patches: torch.Tensor  # (B, N, M * P) mel patches, the injection's input ((B, N, 0) without injection)
    lengths: torch.Tensor  # (B,) valid frames


class Tokenizer(nn.Module):
    """The whole model. ``encode``/``decode`` are the inference API; ``features``/``inject``/``synthesize`` are
    their differentiable parts, used by training."""

    latent_mean: torch.Tensor
    latent_std: torch.Tensor

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        fe, enc = config.frontend, config.encoder
        self.encoder = DashengEncoder(fe, enc)
        self.injection = AcousticInjection(config.injection, fe, enc.patch_frames, enc.embed_dim) \
            if config.injection.enabled else None
        self.decoder = VocosDecoder(config.decoder, config.latent_dim)
        self.head = ISTFTHead(config.decoder)
        # Per-channel latent statistics, measured on training data; generators work on normalised latents.
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.training_record: dict[str, Any] = {"trained": False}
        self.model_id = f"{config.name}@unsaved"  # name@weights-hash, set when saved or loaded
        self.decode_chunk_frames = 750  # 30 s per decoder window; longer latents are decoded in overlapping windows
        self.precision = "fp32"  # inference precision, see ``dashtok.precision.set_precision``

    # ---- read-only facts -------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    def train(self, mode: bool = True) -> Tokenizer:
        """The semantic encoder is frozen: it stays in eval mode (BatchNorm statistics fixed) while training."""
        super().train(mode)
        self.encoder.eval()
        return self

    # ---- differentiable parts ---------------------------------------------------------------------------------
    def features(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> Features:
        """wav (B, T) at ``sample_rate``, lengths (B,) valid samples -> :class:`Features`: the frozen semantic
        tokens and the injection's input patches (both without gradient: nothing before the injection learns)."""
        b, t = wav.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=wav.device)
        with torch.no_grad():
            semantic, encoder_mel = self.encoder.encode(wav, lengths, self.precision)  # (B, N, D), (B, 1, M, F)
            if self.injection is None:
                patches = semantic.new_zeros(b, semantic.shape[1], 0)
            else:
                patches = self.injection.patches(wav, lengths, encoder_mel)  # (B, N, M * P)
        frame_lengths = (lengths // self.config.frontend.hop_length + 1) // self.config.encoder.patch_frames
        return Features(semantic=semantic, patches=patches, lengths=frame_lengths)

    def inject(self, feats: Features) -> torch.Tensor:
        """Features -> latents (B, N, D); zeros past each length. Without injection: the semantic features."""
        if self.injection is None:
            return feats.semantic
        mask = lengths_to_mask(feats.lengths, feats.semantic.shape[1]).unsqueeze(-1)
        with autocast_for(self.precision, feats.semantic.device):
            return self.injection(feats.semantic, feats.patches).float() * mask

    def synthesize(self, latents: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """latents (B, N, D), lengths (B,) frames -> audio (B, N * hop_length), zeros past each length."""
        if lengths is None or bool((lengths >= latents.shape[1]).all()):
            with autocast_for(self.precision, latents.device):
                hidden = self.decoder(latents)
            return self.head(hidden)
        up = self.config.decoder.upsample
        mask = lengths_to_mask(lengths * up, latents.shape[1] * up)  # (B, L) at the head's frame rate
        latents = latents.masked_fill(~lengths_to_mask(lengths, latents.shape[1]).unsqueeze(-1), 0.0)
        with autocast_for(self.precision, latents.device):
            hidden = self.decoder(latents, mask)
        audio = self.head(hidden, mask)
        return audio * lengths_to_mask(lengths * self.hop_length, audio.shape[1])

    # ---- inference API ----------------------------------------------------------------------------------------
    @torch.no_grad()  # not inference_mode: its tensors could not feed a trainable probe or generator later
    def encode(self, wav: ArrayLike, lengths: ArrayLike | None = None, sample_rate: int | None = None,
               return_semantic: bool = False) -> EncodeOutput:
        """Audio -> latents.

        wav: (T,), (B, T) or (B, C, T) float tensor or array; channels are averaged to mono.
        lengths: (B,) valid samples of a padded batch (None: all). sample_rate: of ``wav`` (default: the model's);
        other rates are resampled with soxr. Returns latents (B, N, D) at ``frame_rate`` and their lengths.
        """
        wav_t, lengths_t = self._prepare_audio(wav, lengths, sample_rate)
        feats = self.features(wav_t, lengths_t)
        latents = self.inject(feats)
        return EncodeOutput(latents=latents, lengths=feats.lengths,
                            semantic=feats.semantic if return_semantic else None)

    @torch.no_grad()
    def decode(self, latents: ArrayLike, lengths: ArrayLike | None = None) -> DecodeOutput:
        """latents (N, D) or (B, N, D), lengths (B,) frames -> audio (B, N * hop_length) at ``sample_rate``.

        Latent sequences longer than ``decode_chunk_frames`` are decoded in windows with enough context on each
        side to cover the decoder's receptive field, so memory is bounded and the result equals one-shot decoding.
        """
        z = torch.as_tensor(latents, dtype=torch.float32, device=self.device)
        if z.ndim == 2:
            z = z.unsqueeze(0)
        if z.ndim != 3 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"latents must be (N, {self.latent_dim}) or (B, N, {self.latent_dim}) for this model, "
                             f"got shape {tuple(z.shape)}")
        b, n, _ = z.shape
        lens = torch.full((b,), n, dtype=torch.long, device=self.device) if lengths is None else \
            torch.as_tensor(lengths, dtype=torch.long, device=self.device).reshape(-1)
        if lens.shape[0] != b or bool((lens < 0).any()) or bool((lens > n).any()):
            raise ValueError(f"lengths must be {b} values in [0, {n}], got {lens.tolist()}")
        valid = lengths_to_mask(lens, n).unsqueeze(-1)
        if not bool(torch.isfinite(z).logical_or(~valid).all()):
            raise ValueError("latents contain NaN or Inf")
        step = self.decode_chunk_frames
        if n <= step:
            audio = self.synthesize(z, lens)
        else:
            context = context_frames(self)
            audio = torch.empty(b, n * self.hop_length, device=self.device)
            for s in range(0, n, step):
                e = min(n, s + step)
                a, c = max(0, s - context), min(n, e + context)
                win = self.synthesize(z[:, a:c], (lens - a).clamp(0, c - a))
                audio[:, s * self.hop_length : e * self.hop_length] = \
                    win[:, (s - a) * self.hop_length : (e - a) * self.hop_length]
        return DecodeOutput(audio=audio, lengths=lens * self.hop_length)

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(…, D) -> per-channel standardised latents (what generators are trained on)."""
        return (latents - self.latent_mean) / self.latent_std

    def denormalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return latents * self.latent_std + self.latent_mean

    def _prepare_audio(self, wav: ArrayLike, lengths: ArrayLike | None,
                       sample_rate: int | None) -> tuple[torch.Tensor, torch.Tensor]:
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
        sr = self.sample_rate if sample_rate is None else int(sample_rate)
        if sr != self.sample_rate:
            from dashtok.audio_io import resample

            items = [torch.from_numpy(resample(x[i, : lens[i]].numpy(), sr, self.sample_rate)) for i in range(b)]
            lens = torch.tensor([len(it) for it in items], dtype=torch.long)
            x = torch.stack([nn.functional.pad(it, (0, int(lens.max()) - len(it))) for it in items])
        short = [i for i in range(b) if int(lens[i]) < self.config.min_num_samples]
        if short:
            raise ValueError(f"audio item(s) {short} shorter than one {1000 / self.frame_rate:.0f} ms frame "
                             f"(need >= {self.config.min_num_samples} samples at {self.sample_rate} Hz)")
        return x.to(self.device), lens.to(self.device)

    # ---- checkpoints ------------------------------------------------------------------------------------------
    def save(self, path: str | Path, training: dict[str, Any] | None = None) -> None:
        from dashtok.checkpoint import save_tokenizer

        if self.precision == "int8":
            raise ValueError("an int8-quantized model cannot be saved; save the float32 model it was made from")
        save_tokenizer(self, path, training=training)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Tokenizer:
        """A dashtok checkpoint file (or a directory holding ``model.safetensors``), loaded strictly."""
        from dashtok.checkpoint import load_tokenizer

        return load_tokenizer(path, device=device)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu",
                        top_db_scope: TopDbScope | None = None) -> Tokenizer:
        """The bundled default model (offline) when ``path`` is None; else a dashtok checkpoint file or directory,
        an official DashengTokenizer directory (``config.json`` + ``model.safetensors``, as downloaded, or its hub
        cache folder), or a hub id such as ``"mispeech/dashengtokenizer"`` (the Hugging Face cache first; a
        download only with huggingface_hub installed and ``HF_HUB_OFFLINE`` unset).

        ``top_db_scope="batch"`` reproduces the release's batched dB floor (see ``FrontendConfig``)."""
        from dashtok.checkpoint import default_checkpoint_path, load_tokenizer
        from dashtok.release import load_pretrained

        if path is None:
            return load_tokenizer(default_checkpoint_path(), device, top_db_scope)
        return load_pretrained(path, device, top_db_scope)
