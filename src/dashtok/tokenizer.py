"""DashengTokenizer, as the paper draws it:

    audio -> semantic encoder (frozen Dasheng, ``encoder.py``) ----------------+
          -> acoustic front end -> one linear layer + LayerNorm (``injection.py``) -> (+) -> latents (25 Hz)
    latents -> decoder (upsampler + ConvNeXt, ``decoder.py``) -> iSTFT head (``head.py``) -> audio (16 kHz)

``encode``/``decode`` are the inference API (the :class:`dashtok.codec.Codec` contract);
``features``/``inject``/``synthesize`` are their differentiable parts, used by training.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dashtok.checkpoint import (
    CheckpointError,
    default_checkpoint_path,
    latent_id,
    load_dasheng_checkpoint,
    read_checkpoint,
    strict_load,
    weights_hash,
    write_checkpoint,
)
from dashtok.codec import (
    ArrayLike,
    DecodeOutput,
    EncodeOutput,
    NormalizesLatents,
    prepare_audio,
    validate_latents,
)
from dashtok.config import DecoderConfig, InjectionConfig, TokenizerConfig, TopDbScope
from dashtok.decoder import VocosDecoder
from dashtok.encoder import DashengEncoder
from dashtok.head import make_head
from dashtok.injection import AcousticInjection
from dashtok.masking import lengths_to_mask
from dashtok.precision import autocast_for
from dashtok.release import official_dir, read_official, to_dashtok_state, write_official
from dashtok.streaming import StreamingDecoder, context_frames

__all__ = ["DecodeOutput", "EncodeOutput", "Features", "Tokenizer"]


@dataclass
class Features:
    """Differentiable intermediate results of encoding a batch (what training needs)."""

    semantic: torch.Tensor  # (B, N, D) frozen encoder output
    patches: torch.Tensor  # (B, N, M * P) mel patches, the injection's input ((B, N, 0) without injection)
    lengths: torch.Tensor  # (B,) valid frames


class Tokenizer(NormalizesLatents, nn.Module):
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
        self.head = make_head(config.decoder)
        # Per-channel latent statistics, measured on training data; generators work on normalised latents.
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.training_record: dict[str, Any] = {"trained": False}
        self.model_id = f"{config.name}@unsaved"  # name@weights-hash, set when saved or loaded
        self._latent_id: str | None = None  # see latent_id
        self.decode_chunk_frames = 750  # 30 s per decoder window; longer latents are decoded in overlapping windows
        self.precision = "fp32"  # inference precision, see ``dashtok.precision.set_precision``

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self._latent_id = None  # other weights: measured again when asked for
        return super().load_state_dict(*args, **kwargs)

    # ---- read-only facts -------------------------------------------------------------------------------------
    @property
    def latent_id(self) -> str:
        """``latents@hash`` of what makes this model's latents (``checkpoint.latent_id``): models that share it
        make the same latents, whatever their decoders. Read from the checkpoint, else measured once (files from
        before latent ids: on first use, not on loading)."""
        if self._latent_id is None:
            self._latent_id = latent_id(self.state_dict(), self.config)
        return self._latent_id

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

    @property
    def min_num_samples(self) -> int:
        return self.config.min_num_samples

    @property
    def decoder_context(self) -> int:
        """Latent frames on each side that influence one decoded frame (what windowed decoding must add)."""
        return context_frames(self.config.decoder)

    def int8_modules(self) -> list[nn.Module]:
        """The transformer and ConvNeXt blocks, whose linear layers ``set_precision(model, "int8")`` quantizes."""
        return [self.encoder.blocks, self.decoder.blocks]

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
        frame_lengths = self.config.num_frames(lengths)
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
        return self.render(latents, lengths)[0]

    def render(self, latents: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`synthesize`, and the head's complex spectrum (B, F, N * upsample) the audio was made from (float32;
        what training's consistency loss compares with the spectrum of that audio)."""
        if lengths is None or bool((lengths >= latents.shape[1]).all()):
            with autocast_for(self.precision, latents.device):
                hidden = self.decoder(latents)
            return self.head.render(hidden)
        up = self.config.decoder.upsample
        mask = lengths_to_mask(lengths * up, latents.shape[1] * up)  # (B, L) at the head's frame rate
        latents = latents.masked_fill(~lengths_to_mask(lengths, latents.shape[1]).unsqueeze(-1), 0.0)
        with autocast_for(self.precision, latents.device):
            hidden = self.decoder(latents, mask)
        audio, spectrum = self.head.render(hidden, mask)
        return audio * lengths_to_mask(lengths * self.hop_length, audio.shape[1]), spectrum

    # ---- inference API ----------------------------------------------------------------------------------------
    @torch.no_grad()  # not inference_mode: its tensors could not feed a trainable probe or generator later
    def encode(self, wav: ArrayLike, lengths: ArrayLike | None = None, sample_rate: int | None = None,
               return_semantic: bool = False) -> EncodeOutput:
        """Audio -> latents.

        wav: (T,), (B, T) or (B, C, T) float tensor or array; channels are averaged to mono.
        lengths: (B,) valid samples of a padded batch (None: all). sample_rate: of ``wav`` (default: the model's);
        other rates are resampled with soxr. Returns latents (B, N, D) at ``frame_rate`` and their lengths.
        """
        wav_t, lengths_t = prepare_audio(wav, lengths, sample_rate, self.sample_rate, self.config.min_num_samples,
                                         1000 / self.frame_rate, self.device)
        one_recording = wav_t.shape[0] == 1 and (self.config.frontend.top_db_scope == "example"
                                                 or int(lengths_t[0]) == wav_t.shape[1])
        if one_recording:  # the streaming loop that `dashtok encode` runs, whatever the length (a padded item under
            # the "batch" dB scope takes its floor from the padding too, as upstream does: the batch path below)
            one = wav_t[0]
            parts = list(self.stream_features(lambda a, b: one[a:b], int(lengths_t[0])))
            pad = int(self.config.num_frames(wav_t.shape[1])) - sum(int(f.lengths[0]) for f in parts)
            feats = Features(semantic=F.pad(torch.cat([f.semantic for f in parts], dim=1), (0, 0, 0, pad)),
                             patches=F.pad(torch.cat([f.patches for f in parts], dim=1), (0, 0, 0, pad)),
                             lengths=torch.stack([f.lengths for f in parts]).sum(dim=0))
        else:  # several: one padded batch, equal to its items encoded one at a time
            feats = self.features(wav_t, lengths_t)
        latents = self.inject(feats)
        return EncodeOutput(latents=latents, lengths=feats.lengths,
                            semantic=feats.semantic if return_semantic else None)

    @torch.no_grad()
    def stream_features(self, read: Callable[[int, int], torch.Tensor], num_samples: int,
                        chunks_per_step: int | None = None) -> Iterator[Features]:
        """:class:`Features` of one recording of ``num_samples`` samples at ``sample_rate`` that ``read(a, b)`` gives
        piecewise ((b - a,) samples [a, b)), one group of ``chunks_per_step`` encoder chunks (~10 s each; default:
        the encoder's ``max_chunks``) at a time, so memory is one group whatever the duration. Concatenated they
        equal the whole recording's features (to float rounding where chunks are grouped differently). The encoder's
        chunks are independent but for two things: STFT frames near a group's edges read samples of the next
        (``Spectrogram.frames_of`` reads that margin), and the dB floor is the whole recording's peak minus top_db,
        which a first pass finds (``DashengEncoder.peak_db``)."""
        if num_samples < self.min_num_samples:
            raise ValueError(f"{num_samples} samples is shorter than one latent frame ({self.min_num_samples})")
        hop, patch = self.config.frontend.hop_length, self.config.encoder.patch_frames

        def device_read(a: int, b: int) -> torch.Tensor:  # (1, b - a) on the model's device, as the front ends want
            return read(a, b)[None].to(self.device, torch.float32)

        total = 1 + num_samples // hop  # mel frames
        step = self.config.encoder.target_length * (chunks_per_step or self.encoder.max_chunks)
        power: torch.Tensor | None = None
        with torch.autocast(self.device.type, enabled=False):  # the front end is float32 whatever the caller's
            if total <= step:  # one group: its own mel gives the peak, computed once (short clips pay no first pass)
                power = self.encoder.mel_spectrogram.frames_of(device_read, num_samples, 0, total)
                peak = self.encoder.to_db.db(power).amax().reshape(1)
            else:
                peak = self.encoder.peak_db(device_read, num_samples)
        for f0 in range(0, total, step):
            f1 = min(total, f0 + step)
            tokens = (f1 - f0) // patch
            if tokens == 0:  # a last chunk under one patch (the release pads it to one token and drops it too)
                break
            semantic, mel = self.encoder.encode_frames(device_read, num_samples, f0, f1, peak, self.precision,
                                                       power if f0 == 0 else None)
            patches = semantic.new_zeros(1, tokens, 0) if self.injection is None else \
                self.injection.patches_of_frames(device_read, num_samples, f0, f1, mel)
            yield Features(semantic=semantic, patches=patches, lengths=torch.tensor([tokens], device=self.device))

    @torch.no_grad()
    def encode_stream(self, read: Callable[[int, int], torch.Tensor], num_samples: int, semantic: bool = False,
                      chunks_per_step: int | None = None) -> Iterator[torch.Tensor]:
        """The latents (or, with ``semantic``, the frozen semantic features) of one long recording read piecewise
        (``stream_features``), (n, D) per group of chunks: ``encode`` of the whole recording, in bounded memory."""
        for feats in self.stream_features(read, num_samples, chunks_per_step):
            yield feats.semantic[0] if semantic else self.inject(feats)[0]

    def forward(self, wav: ArrayLike, lengths: ArrayLike | None = None, sample_rate: int | None = None
                ) -> DecodeOutput:
        """``tok(wav)``: the reconstruction, ``decode(encode(wav))``, at the model's ``sample_rate`` (as the codecs of
        Hugging Face and encodec do when called)."""
        enc = self.encode(wav, lengths, sample_rate)
        return self.decode(enc.latents, enc.lengths)

    @torch.no_grad()
    def decode(self, latents: ArrayLike, lengths: ArrayLike | None = None) -> DecodeOutput:
        """latents (N, D) or (B, N, D), lengths (B,) frames -> audio (B, N * hop_length) at ``sample_rate``.

        Latent sequences longer than ``decode_chunk_frames`` are decoded in windows with enough context on each
        side to cover the decoder's receptive field (``dashtok.streaming``), so memory is bounded and the result
        equals one-shot decoding.
        """
        z, lens = validate_latents(latents, lengths, self.latent_dim, self.device)
        if z.shape[1] <= self.decode_chunk_frames:
            audio = self.synthesize(z, lens)
        else:
            stream = StreamingDecoder(self, block_frames=self.decode_chunk_frames, lengths=lens)
            audio = torch.cat([stream.push(z), stream.flush()], dim=1)
        return DecodeOutput(audio=audio, lengths=lens * self.hop_length)

    # ---- checkpoints ------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], training: dict[str, Any] | None = None) -> None:
        """Weights + config + training record, atomically; ``load`` gives back identical bits."""
        if self.precision == "int8":
            raise ValueError("an int8-quantized model cannot be saved; save the float32 model it was made from")
        record = training if training is not None else self.training_record
        self.model_id, self._latent_id = write_checkpoint(path, self.state_dict(), self.config, record)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu",
             top_db_scope: TopDbScope | None = None) -> Tokenizer:
        """A dashtok checkpoint file (or a directory holding ``model.safetensors``), loaded strictly."""
        ck = read_checkpoint(path, top_db_scope)
        model = cls(ck.config)
        strict_load(model, ck.state, ck.path)
        model.training_record, model.model_id, model._latent_id = ck.training, ck.model_id, ck.latent_id or None
        return model.eval().to(device)

    @classmethod
    def from_official(cls, directory: str | os.PathLike[str], device: str | torch.device = "cpu",
                      top_db_scope: TopDbScope = "example") -> Tokenizer:
        """An official DashengTokenizer directory (config.json + model.safetensors), ported strictly
        (``dashtok.release``); it computes what the official remote code computes."""
        files = read_official(directory, top_db_scope)
        model = cls(files.config)
        strict_load(model, to_dashtok_state(model, files), files.weights)
        model.training_record = files.training
        model.model_id = files.metadata.get("dashtok_model_id") or \
            f"{files.config.name}@{weights_hash(model.state_dict())}"
        return model.eval().to(device)

    def save_official(self, directory: str | os.PathLike[str]) -> Path:
        """This model in the official layout (config.json + model.safetensors), for the official remote code and
        the tools built on it; what the layout cannot express is refused (``dashtok.release.official_config``)."""
        if self.precision == "int8":
            raise CheckpointError("an int8-quantized model cannot be saved; convert the float32 model it was made "
                                  "from")
        return write_official(self, self.config, self.model_id, self.training_record, directory)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """A directory that ``from_pretrained`` loads back (the Hugging Face convention): the official layout where
        it can express this model (``save_official``), else dashtok's checkpoint as ``directory/model.safetensors``
        (e.g. the bundled default, whose magnitude cap the release's head does not have)."""
        d = Path(directory)
        try:
            return self.save_official(d)
        except CheckpointError:
            self.save(d / "model.safetensors")
            (d / "config.json").unlink(missing_ok=True)  # an earlier official save's: it would shadow this file
            return d

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu",
                        top_db_scope: TopDbScope | None = None) -> Tokenizer:
        """The bundled default model (offline) when ``path`` is None; else a dashtok checkpoint file or directory,
        an official DashengTokenizer directory (``config.json`` + ``model.safetensors``, as downloaded, or its hub
        cache folder), or a hub id such as ``"mispeech/dashengtokenizer"`` (the Hugging Face cache first; a
        download only with huggingface_hub installed and ``HF_HUB_OFFLINE`` unset).

        ``top_db_scope="batch"`` reproduces the release's batched dB floor (see ``FrontendConfig``)."""
        if path is None:
            return cls.load(default_checkpoint_path(), device, top_db_scope)
        official = official_dir(path)
        if official is not None:
            return cls.from_official(official, device, top_db_scope or "example")
        return cls.load(path, device, top_db_scope)

    # ---- building around a given encoder ---------------------------------------------------------------------
    @classmethod
    def with_encoder(cls, encoder: DashengEncoder, decoder: DecoderConfig, injection: bool, name: str) -> Tokenizer:
        """A fresh tokenizer (random injection and decoder) around a given frozen encoder."""
        config = TokenizerConfig(frontend=encoder.frontend_config, encoder=encoder.config,
                                 injection=InjectionConfig(enabled=injection), decoder=decoder, name=name)
        model = cls(config)
        model.encoder.load_state_dict(encoder.state_dict(), strict=True)
        return model.eval()

    @classmethod
    def from_dasheng(cls, path: str | os.PathLike[str], decoder: DecoderConfig | None = None, injection: bool = True,
                     name: str | None = None, num_heads: int | None = None) -> Tokenizer:
        """A tokenizer around an upstream Dasheng checkpoint: its encoder (frozen, ported strictly) plus a freshly
        initialised injection layer and decoder, ready for the tokenizer training stage."""
        encoder = load_dasheng_checkpoint(path, num_heads=num_heads)
        dec = decoder or DecoderConfig(dim=encoder.config.embed_dim, intermediate_dim=4 * encoder.config.embed_dim)
        return cls.with_encoder(encoder, dec, injection, name or f"dashtok-{Path(path).stem}")
