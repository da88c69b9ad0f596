"""A mel VAE: the baseline that dashtok latents are compared with for generation (the paper's second claim).

Same latent shape (D channels at 25 Hz) and the same decoder family as the tokenizer (Vocos upsampler + ConvNeXt
blocks + iSTFT head), but the latents are *learned for reconstruction* under a KL prior instead of being frozen
semantic features plus one linear layer:

    log-mel (64 bins, 100 Hz) -> BatchNorm -> 64 x 4 patch embedding (25 Hz) -> ConvNeXt blocks -> mean, log-variance
    latents = mean (+ noise while training) -> VocosDecoder -> iSTFT head -> 16 kHz audio

It implements the :class:`dashtok.codec.Codec` contract, so the flow stage, ``dashtok generate`` and ``dashtok eval
gen`` take either kind of checkpoint (:func:`load_codec`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from dashtok.atomic import save_safetensors
from dashtok.checkpoint import CheckpointError, read_metadata, resolve_checkpoint, strict_load, weights_hash
from dashtok.codec import (
    ArrayLike,
    Codec,
    DecodeOutput,
    EncodeOutput,
    NormalizesLatents,
    prepare_audio,
    validate_latents,
)
from dashtok.config import DecoderConfig, FrontendConfig, dataclass_from_dict, latent_frames
from dashtok.decoder import ConvNeXtBlock, VocosDecoder
from dashtok.frontend import AmplitudeToDB, MelSpectrogram
from dashtok.head import make_head
from dashtok.masking import lengths_to_mask
from dashtok.tokenizer import Tokenizer

FORMAT = "dashtok-vae/1"


@dataclass(frozen=True)
class VAEConfig:
    name: str = "mel-vae-small"
    latent_dim: int = 192
    encoder_dim: int = 256
    encoder_blocks: int = 4
    patch_frames: int = 4  # mel frames per latent frame: 4 x 10 ms = 40 ms, as the tokenizer
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    decoder: DecoderConfig = field(default_factory=lambda: DecoderConfig.preset("small"))

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def hop_length(self) -> int:
        return self.frontend.hop_length * self.patch_frames

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def min_num_samples(self) -> int:
        return self.hop_length - self.frontend.hop_length  # 1 + T // 160 >= 4 mel frames

    @property
    def hash(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def num_frames(self, num_samples: int) -> int:
        return latent_frames(num_samples, self.frontend.hop_length, self.patch_frames)


class MelVAE(NormalizesLatents, nn.Module):
    latent_mean: torch.Tensor
    latent_std: torch.Tensor

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        fe, d = config.frontend, config.encoder_dim
        # window and filterbank derive from the config: not stored in VAE checkpoints
        self.front_end = nn.Sequential(MelSpectrogram.dasheng(fe, persistent=False), AmplitudeToDB(fe))
        self.norm = nn.BatchNorm1d(fe.n_mels, momentum=0.01)
        self.patch_embed = nn.Conv1d(fe.n_mels, d, config.patch_frames, stride=config.patch_frames)
        self.blocks = nn.ModuleList([ConvNeXtBlock(d, 3 * d, 7, 1.0 / config.encoder_blocks)
                                     for _ in range(config.encoder_blocks)])
        self.posterior = nn.Linear(d, 2 * config.latent_dim)
        self.decoder = VocosDecoder(config.decoder, config.latent_dim)
        self.head = make_head(config.decoder)
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))
        self.training_record: dict[str, Any] = {"trained": False}
        self.model_id = f"{config.name}@unsaved"
        self.precision = "fp32"

    # the facts generators read, as on Tokenizer
    sample_rate = property(lambda self: self.config.sample_rate)
    frame_rate = property(lambda self: self.config.frame_rate)
    hop_length = property(lambda self: self.config.hop_length)
    latent_dim = property(lambda self: self.config.latent_dim)
    device = property(lambda self: self.latent_mean.device)
    min_num_samples = property(lambda self: self.config.min_num_samples)

    def posterior_of(self, wav: torch.Tensor, lengths: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """wav (B, T) -> mean, log-variance (B, N, D) and frame lengths (B,)."""
        b, t = wav.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=wav.device)
        frames = latent_frames(lengths, self.config.frontend.hop_length, self.config.patch_frames)
        with torch.autocast(wav.device.type, enabled=False):
            mel = self.front_end(wav.float())  # (B, M, F)
        x = self.patch_embed(self.norm(mel))  # (B, d, N)
        mask = lengths_to_mask(frames, x.shape[-1])[:, None, :].to(x.dtype)
        for block in self.blocks:
            x = block(x, mask)
        mean, logvar = self.posterior(x.transpose(1, 2)).chunk(2, dim=-1)
        keep = mask.transpose(1, 2)
        return mean * keep, logvar.clamp(-30.0, 20.0) * keep, frames

    def synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(latents))

    @torch.no_grad()
    def encode(self, wav: ArrayLike, lengths: ArrayLike | None = None, sample_rate: int | None = None
               ) -> EncodeOutput:
        """Audio -> posterior means (B, N, D) at 25 Hz; the same input rules as ``Tokenizer.encode``."""
        x, lens = prepare_audio(wav, lengths, sample_rate, self.sample_rate, self.config.min_num_samples,
                                1000 / self.frame_rate, self.device)
        mean, _, frames = self.posterior_of(x, lens)
        return EncodeOutput(latents=mean, lengths=frames)

    @torch.no_grad()
    def decode(self, latents: ArrayLike, lengths: ArrayLike | None = None) -> DecodeOutput:
        z, lens = validate_latents(latents, lengths, self.latent_dim, self.device)
        audio = self.synthesize(z)
        return DecodeOutput(audio=audio * lengths_to_mask(lens * self.hop_length, audio.shape[1]).to(audio.device),
                            lengths=lens * self.hop_length)

    # ---- checkpoints ----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], training: dict[str, Any] | None = None) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        self.model_id = f"{self.config.name}@{weights_hash(state)}"
        record = training if training is not None else self.training_record
        save_safetensors(state, path, {"format": FORMAT, "config": json.dumps(asdict(self.config)),
                                       "model_id": self.model_id, "training": json.dumps(record)})
        self.training_record = record

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> MelVAE:
        p = Path(path)
        meta = read_metadata(p)
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{p}: not a dashtok VAE checkpoint (format {meta.get('format')!r})")
        try:
            model = cls(dataclass_from_dict(VAEConfig, json.loads(meta["config"])))
        except (KeyError, ValueError, TypeError) as err:
            raise CheckpointError(f"{p}: bad VAE config in metadata ({err})") from None
        strict_load(model, load_file(str(p)), p)
        model.model_id = meta["model_id"]
        model.training_record = json.loads(meta.get("training", "{}"))
        return model.to(device).eval()


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(q || N(0, 1)) per valid latent frame, summed over channels and averaged over frames."""
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum(-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


def load_codec(path: str | os.PathLike[str] | None, device: str | torch.device = "cpu") -> Codec:
    """A tokenizer or a VAE checkpoint (by its format); None = the bundled default tokenizer."""
    if path is None or str(path) == "":
        return Tokenizer.from_pretrained(device=device)
    p = Path(path)
    if p.is_file() or (p / "model.safetensors").is_file():
        f = resolve_checkpoint(p)
        if read_metadata(f).get("format") == FORMAT:
            return MelVAE.load(f, device)
    return Tokenizer.from_pretrained(path, device=device)  # dashtok, official layout or hub id
