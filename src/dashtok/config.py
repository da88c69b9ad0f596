"""Typed, frozen configuration of every block of the tokenizer.

One dataclass per component, composed into :class:`TokenizerConfig`. Derived numbers (frame rate, hop
length, latent width) are properties and are never stored, so a checkpoint cannot hold inconsistent values.
The whole config is saved as JSON inside every checkpoint (see ``checkpoint.py``).
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

if TYPE_CHECKING:
    import torch

TopDbScope = Literal["example", "batch"]
InjectionFrontEnd = Literal["acoustic", "encoder_mel"]
UpsamplerWidth = Literal["latent", "decoder"]
HeadPhase = Literal["angle", "parallel"]
T = TypeVar("T")


def dataclass_from_dict(cls: type[T], d: Mapping[str, Any], where: str = "") -> T:
    """Build a (nested) config dataclass from plain data (JSON, TOML), refusing unknown keys and values of the wrong
    kind (a string for a number, a string for a list, ...) by name.

    A field whose default is a dataclass is built recursively; lists become tuples (configs are frozen).
    """
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - set(known)
    if unknown:
        raise ValueError(f"unknown {where or cls.__name__} config keys: {sorted(unknown)}")
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        f = known[key]
        default = f.default_factory() if f.default_factory is not MISSING else None
        if is_dataclass(default) and isinstance(value, Mapping):
            kwargs[key] = dataclass_from_dict(type(default), value, key)
            continue
        if not _fits(value, hints[key]):
            name = f"{where}.{key}" if where and where != "training" else key
            raise ValueError(f"{name} must be {_kind(hints[key])}, not {value!r}")
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


_NONE = type(None)
# The plain kinds a config field can be checked against: what to call each in a message, and what data stands for it
# (an int is a float too, a list a tuple; a bool is neither an int nor a float)
_KINDS: dict[type, tuple[str, Any]] = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    str: ("a string", lambda v: isinstance(v, str)),
    tuple: ("a list", lambda v: isinstance(v, list | tuple)),
    dict: ("a table ({key = value})", lambda v: isinstance(v, Mapping)),
}


def _accepts(hint: Any) -> list[Any]:
    """The plain types a field's annotation admits (its union's members), origins for generics (tuple[int, ...])."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return [t for arg in get_args(hint) for t in _accepts(arg)]
    return [origin or hint]


def _fits(value: Any, hint: Any) -> bool:
    """Whether plain data ``value`` can stand for a field annotated ``hint``; only the outer kind is checked, and
    annotations other than the plain kinds (Literal, Any) accept anything."""
    return any(value is None if t is _NONE else _KINDS[t][1](value) if t in _KINDS else True
               for t in _accepts(hint))


def _kind(hint: Any) -> str:
    return " or ".join(dict.fromkeys("none" if t is _NONE else _KINDS[t][0] for t in _accepts(hint) if t in _KINDS
                                    or t is _NONE))


ENHANCER_KINDS = ("regression", "flow")  # dashtok.generate.enhance: one-pass regression, or generative flow matching


def check_enhancer(kind: str, sample_steps: int, prefix: str) -> None:
    """An enhancer's kind and sampling steps, checked where its model config and the training config are built
    alike; ``prefix`` names them in the message ("enhance." for the training config's keys)."""
    if kind not in ENHANCER_KINDS:
        raise ValueError(f"{prefix}kind must be {' or '.join(map(repr, ENHANCER_KINDS))}, not {kind!r}")
    if sample_steps < 1:
        raise ValueError(f"{prefix}sample_steps must be >= 1, not {sample_steps}")


N = TypeVar("N", int, "torch.Tensor")


def latent_frames(num_samples: N, hop_length: int, patch_frames: int) -> N:
    """Tokens (latent frames) for ``num_samples`` samples: the centred mel STFT gives 1 + L // hop frames, and each
    token takes ``patch_frames`` of them (a partial patch at the end is dropped). The one place this is computed."""
    return (num_samples // hop_length + 1) // patch_frames


SAMPLE_RATE = 16000  # Hz: the rate of every dashtok model, corpus and training stage (Dasheng's)


@dataclass(frozen=True)
class FrontendConfig:
    """Log-mel front end of Dasheng (torchaudio MelSpectrogram + AmplitudeToDB semantics)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 512
    win_length: int = 512
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0
    top_db: float = 120.0
    # torchaudio's AmplitudeToDB takes the top_db floor from the maximum over the *whole batch*, so a quiet
    # clip's features change with its batch mates. "example" (our default) floors each clip by its own
    # maximum, which equals upstream Dasheng run on one clip at a time and makes a padded batch equal to its
    # items run alone. "batch" reproduces upstream's batched behaviour bit for bit.
    top_db_scope: TopDbScope = "example"


@dataclass(frozen=True)
class EncoderConfig:
    """The frozen Dasheng ViT. Presets: ``EncoderConfig.preset("base" | "0.6b" | "1.2b" | "tiny" | "small")``."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    patch_frames: int = 4  # mel frames per token: 4 x 10 ms = 40 ms
    target_length: int = 1008  # mel frames per independently encoded chunk (~10 s)

    @property
    def chunk_tokens(self) -> int:
        return self.target_length // self.patch_frames

    @staticmethod
    def preset(name: str) -> EncoderConfig:
        if name not in ENCODER_PRESETS:
            raise ValueError(f"unknown encoder preset {name!r}; choose from {sorted(ENCODER_PRESETS)}")
        return ENCODER_PRESETS[name]


ENCODER_PRESETS: dict[str, EncoderConfig] = {
    "base": EncoderConfig(embed_dim=768, depth=12, num_heads=12),
    "0.6b": EncoderConfig(embed_dim=1280, depth=32, num_heads=16),
    "1.2b": EncoderConfig(embed_dim=1536, depth=40, num_heads=24),
    # Our own small encoders, trainable on a CPU.
    "small": EncoderConfig(embed_dim=192, depth=6, num_heads=3),
    "tiny": EncoderConfig(embed_dim=32, depth=2, num_heads=2),
}


@dataclass(frozen=True)
class InjectionConfig:
    """The single linear layer that adds the acoustic patch of each frame to the semantic features.

    ``front_end="acoustic"`` is the released model's injection: its own front end (magnitude mel, ``n_fft`` 1024,
    hop = the encoder's hop, ``n_mels`` 128 HTK bins over 0-8 kHz, natural log of ``max(mel, log_floor)``), one
    linear map of each ``n_mels`` x 4 patch to the encoder width, then a LayerNorm (``layer_norm_eps``).
    ``front_end="encoder_mel"`` is what dashtok checkpoints of format ``dashtok/1`` used: the encoder's own
    BatchNorm'd 64-bin dB mel patch, no LayerNorm. It exists only to load those models; new models use "acoustic".
    ``enabled=False`` gives the paper's ablation: latents are the frozen semantic features alone.
    """

    enabled: bool = True
    front_end: InjectionFrontEnd = "acoustic"
    n_fft: int = 1024  # window = n_fft (Hann), centred with reflect padding
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-7
    layer_norm_eps: float = 1e-5

    @property
    def uses_layer_norm(self) -> bool:
        return self.enabled and self.front_end == "acoustic"


@dataclass(frozen=True)
class DecoderConfig:
    """Vocos-style decoder: transposed-conv upsampler -> ConvNeXt blocks -> iSTFT head."""

    dim: int = 1280
    intermediate_dim: int = 5120
    num_blocks: int = 12
    kernel_size: int = 7
    upsample: int = 2  # latent frames (25 Hz) -> head frames (50 Hz)
    n_fft: int = 1280
    hop_length: int = 320
    # The head's magnitude is min(exp(x), max_magnitude): the release's cap is 100. With n_fft 1280 a sine of
    # amplitude ~0.31 already reaches |X| = 100, so models of our own may raise it to what their data needs.
    max_magnitude: float = 100.0
    # "latent": the upsampler keeps the latent width and the embedding conv maps it to ``dim`` (the release);
    # "decoder": the upsampler maps straight to ``dim`` (dashtok/1 checkpoints).
    upsampler_width: UpsamplerWidth = "latent"
    # How the head makes the phase (``head.py``): "angle" (the release's) or "parallel" (the direction of a predicted
    # (real, imaginary) pair). Models of our own only: the official layout has the angle head.
    phase: HeadPhase = "angle"

    @staticmethod
    def preset(name: str) -> DecoderConfig:
        if name not in DECODER_PRESETS:
            raise ValueError(f"unknown decoder preset {name!r}; choose from {sorted(DECODER_PRESETS)}")
        return DECODER_PRESETS[name]

    @property
    def receptive_field(self) -> int:
        """Head frames on each side that influence one output frame (embed conv + every block)."""
        return (self.num_blocks + 1) * (self.kernel_size // 2)


# (section, field, default) of every field added since the first checkpoints with a config hash shipped
ADDED_FIELDS = (("decoder", "phase", "angle"),)

DECODER_PRESETS: dict[str, DecoderConfig] = {
    "release": DecoderConfig(),
    "small": DecoderConfig(dim=256, intermediate_dim=768, num_blocks=8),
    "tiny": DecoderConfig(dim=32, intermediate_dim=64, num_blocks=2),
}


@dataclass(frozen=True)
class TokenizerConfig:
    """Everything needed to rebuild a :class:`dashtok.Tokenizer`."""

    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    encoder: EncoderConfig = field(default_factory=lambda: ENCODER_PRESETS["0.6b"])
    injection: InjectionConfig = field(default_factory=InjectionConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    name: str = "dashtok"

    def __post_init__(self) -> None:
        if self.encoder.embed_dim % self.encoder.num_heads:
            raise ValueError("encoder.embed_dim must be divisible by encoder.num_heads")
        if self.encoder.target_length % self.encoder.patch_frames:
            raise ValueError("encoder.target_length must be a multiple of encoder.patch_frames")
        if self.decoder.hop_length * self.decoder.upsample != self.hop_length:
            raise ValueError(
                f"decoder hop {self.decoder.hop_length} x upsample {self.decoder.upsample} must equal the "
                f"latent hop {self.hop_length} samples (frontend hop x patch frames)"
            )
        if (self.decoder.n_fft - self.decoder.hop_length) % 2:
            raise ValueError("decoder.n_fft - decoder.hop_length must be even")
        if self.injection.front_end not in ("acoustic", "encoder_mel"):
            raise ValueError(f"injection.front_end must be 'acoustic' or 'encoder_mel', got "
                             f"{self.injection.front_end!r}")
        if self.decoder.upsampler_width not in ("latent", "decoder"):
            raise ValueError(f"decoder.upsampler_width must be 'latent' or 'decoder', got "
                             f"{self.decoder.upsampler_width!r}")
        if self.decoder.phase not in ("angle", "parallel"):
            raise ValueError(f"decoder.phase must be 'angle' or 'parallel', got {self.decoder.phase!r}")
        if self.decoder.max_magnitude <= 0:
            raise ValueError(f"decoder.max_magnitude must be positive, got {self.decoder.max_magnitude}")

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def hop_length(self) -> int:
        """Samples per latent frame (640 at 16 kHz: 40 ms)."""
        return self.frontend.hop_length * self.encoder.patch_frames

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def latent_dim(self) -> int:
        return self.encoder.embed_dim

    @property
    def acoustic_front_end(self) -> bool:
        """Whether the injection has its own front end (the release's), i.e. reads the audio a second time."""
        return self.injection.enabled and self.injection.front_end == "acoustic"

    @property
    def min_num_samples(self) -> int:
        """Shortest input that yields one latent frame (centred STFT gives 1 + L // hop mel frames); the
        injection's own centred STFT also needs more than n_fft // 2 samples to reflect-pad."""
        one_frame = (self.encoder.patch_frames - 1) * self.frontend.hop_length
        return max(one_frame, self.injection.n_fft // 2 + 1) if self.acoustic_front_end else one_frame

    def num_frames(self, num_samples: N) -> N:
        """Latent frames produced for ``num_samples`` input samples (an int, or a tensor of lengths)."""
        return latent_frames(num_samples, self.frontend.hop_length, self.encoder.patch_frames)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def _hash(self, sections: tuple[str, ...] | None = None) -> str:
        """Short stable hash of ``sections`` of the config (None: all of it). Fields added after models shipped count
        only when set away from their default, so those models keep their hash."""
        d = {k: v for k, v in self.to_dict().items() if sections is None or k in sections}
        for section, name, default in ADDED_FIELDS:
            if section in d and d[section][name] == default:
                del d[section][name]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def hash(self) -> str:
        """Short stable hash of the architecture (what makes latents of two models compatible)."""
        return self._hash()

    @property
    def latent_hash(self) -> str:
        """Short stable hash of what makes the latents: the front ends, the encoder and the injection (not the
        decoder, which only reads them)."""
        return self._hash(("frontend", "encoder", "injection"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizerConfig:
        return dataclass_from_dict(cls, d)

    @classmethod
    def from_json(cls, s: str) -> TokenizerConfig:
        return cls.from_dict(json.loads(s))

    @staticmethod
    def preset(name: str) -> TokenizerConfig:
        """``release`` (Dasheng-0.6B encoder, 1280-d/12-block decoder), ``small`` (our default), ``tiny`` (tests)."""
        if name == "release":
            return TokenizerConfig(encoder=ENCODER_PRESETS["0.6b"], decoder=DECODER_PRESETS["release"],
                                   name="dashtok-release-shape")
        if name == "base":
            return TokenizerConfig(encoder=ENCODER_PRESETS["base"], decoder=DecoderConfig(dim=768,
                                   intermediate_dim=3072), name="dashtok-base")
        if name == "small":
            return TokenizerConfig(encoder=ENCODER_PRESETS["small"], decoder=DECODER_PRESETS["small"],
                                   name="dashtok-small")
        if name == "tiny":
            return TokenizerConfig(encoder=ENCODER_PRESETS["tiny"], decoder=DECODER_PRESETS["tiny"],
                                   name="dashtok-tiny")
        raise ValueError(f"unknown tokenizer preset {name!r}; choose from ['base', 'release', 'small', 'tiny']")
