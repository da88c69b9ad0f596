"""Training configs: frozen dataclasses read from TOML, one file per stage (``configs/*.toml``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from dashtok.config import check_enhancer, dataclass_from_dict


@dataclass(frozen=True)
class DataConfig:
    manifests: tuple[str, ...] = ()  # corpus manifests (train split); or
    folders: tuple[str, ...] = ()  # folders of audio files; or
    shards: tuple[str, ...] = ()  # webdataset-style tar shards of audio files
    latent_shards: tuple[str, ...] = ()  # directories of `dashtok encode --shards` (the flow stage reads these)
    # The tokenizer stage's frozen features of the training clips in this folder (memory-mapped, made as the corpus
    # is read one clip at a time, reused by later runs with the same data and encoder); empty: held in memory
    feature_cache: str = ""
    valid_manifests: tuple[str, ...] = ()
    max_valid_clips: int = 64
    exclude_sources: tuple[str, ...] = ()
    # Share of the sampled training audio per domain ("speech", "music", "sound", "mixture"; folders and shards are
    # "unknown"), e.g. {speech = 0.7} for 70 % speech. Within a domain, and among the domains not listed (which share
    # what is left), clips are drawn in proportion to their length. Empty: every clip in proportion to its length.
    domain_shares: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MAEConfig:
    encoder_preset: str = "small"
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    mask_ratio: float = 0.75
    segment_seconds: float = 10.08  # one encoder chunk (1008 frames): every position embedding is trained


def check_autocast(section: str, value: str) -> None:
    if value not in ("fp32", "bf16", "auto"):
        raise ValueError(f"{section}.autocast must be 'fp32', 'bf16' or 'auto', not {value!r}")


@dataclass(frozen=True)
class TokenizerStageConfig:
    # The frozen encoder comes from: an MAE run folder or its encoder.safetensors, an upstream Dasheng .pt file,
    # or a dashtok tokenizer checkpoint (its encoder; with warm_start also its injection and decoder weights).
    init: str = ""
    warm_start: bool = False
    decoder_preset: str = "small"
    injection: bool = True
    # The injection keeps the weights it starts from (only the decoder and head train): the latents stay those of
    # the starting model, bit for bit, so latents already stored, and the generator and enhancer trained on them,
    # stay valid with the fine-tuned decoder. Its latent statistics stay the starting model's too.
    freeze_injection: bool = False
    name: str = "dashtok-small"
    segment_frames: int = 32  # latent frames per training crop (1.28 s)
    # Values replacing the preset's, e.g. {dim = 384, intermediate_dim = 1152, max_magnitude = 1000.0}
    decoder_overrides: dict[str, float] = field(default_factory=dict)
    gan_start: int = 2000  # steps of mel-only training before the discriminators join
    disc_lr: float = 2e-4
    disc_period_channels: int = 16  # width of the multi-period discriminators (HiFi-GAN's is 32)
    disc_complex: bool = False  # the multi-resolution discriminators judge complex spectra (phase), not magnitudes
    # Keyed by the logged loss names. "stft/l1" (optional) adds a log-magnitude L1 on the linear STFT grids of
    # ``stft_resolutions`` (the head's own 1280/320 first): it sees every bin the head makes, the mel loss does not.
    loss_weights: dict[str, float] = field(default_factory=lambda: {"mel/l1": 45.0, "adv/gen": 1.0,
                                                                     "adv/feat": 2.0})
    stft_resolutions: tuple[tuple[int, int], ...] = ((1280, 320), (512, 128), (128, 32))
    # "phase/ip", "phase/gd", "phase/if" (optional): APNet's anti-wrapped phase losses (``losses.phase_losses``) on
    # the (n_fft, hop) grid ``phase_resolution``, the head's own by default: the phase is what limits the long run
    # (records/long_run/README.md).
    phase_resolution: tuple[int, int] = (1280, 320)
    # "head/consistency" (optional): the head's spectrum against the spectrum of the audio made from it
    # (``losses.consistency_loss``): the overlap-add keeps what a signal can have; this asks the head for only that.
    # "dc/l1" (optional): the output's local mean on the ``phase_resolution`` grid against the input's, relative to
    # the batch's level (``losses.dc_loss``): the DC offset that the head's 0 Hz bin adds.
    # The head's phase rows (the second half of head.out) take this many times the generator's AdamW step: the phase
    # output starts near-constant and the losses move it slowly (records/long_run/README.md). 1: as every parameter.
    phase_lr_scale: float = 1.0
    # Input levels (dB, e.g. [-15, -30]) at which every clip's encoder features are also cached; each training crop
    # takes one of 0 dB and these, uniformly, its audio scaled to match. The frozen encoder is not level-invariant,
    # so a level is a cache of its own: memory and caching time grow by one cache per level.
    gain_db: tuple[float, ...] = ()
    # An exponential moving average of the trained weights (0: none; its decay ramps up over the first steps:
    # ``run.EMA``). With it, validation scores both, and the exported model carries the average.
    ema_decay: float = 0.0
    # What a GAN step costs (issue 13; measured one by one in benchmarks/cpu_2core/train_step.md):
    disc_crop_seconds: float = 0.64  # the discriminators see this random window of each segment (0: all of it)
    disc_reuse_real: bool = True  # feature matching reuses the real-audio features of the discriminator step
    disc_frozen_in_gen: bool = True  # no discriminator weight gradients during the generator pass
    # "fp32" | "bf16" | "auto": decoder blocks and discriminators; iSTFT, spectra and losses stay fp32. "auto": bf16
    # where it runs in hardware (GPUs, CPUs with AVX-512 BF16 or AMX: ``precision.native_bf16``), else fp32.
    autocast: str = "auto"

    def __post_init__(self) -> None:
        check_autocast("tokenizer", self.autocast)
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"tokenizer.ema_decay must be in [0, 1), not {self.ema_decay}")
        known = ("mel/l1", "stft/l1", "phase/ip", "phase/gd", "phase/if", "head/consistency", "dc/l1", "adv/gen",
                 "adv/feat")
        unknown = set(self.loss_weights) - set(known)
        if unknown:
            raise ValueError(f"unknown tokenizer.loss_weights {sorted(unknown)}; known: {', '.join(known)}")
        if not (math.isfinite(self.phase_lr_scale) and self.phase_lr_scale > 0):
            raise ValueError(f"tokenizer.phase_lr_scale must be a positive number, not {self.phase_lr_scale}")
        if not isinstance(self.gain_db, tuple) or not all(isinstance(g, int | float) for g in self.gain_db):
            raise ValueError(f"tokenizer.gain_db must be a list of levels in dB (e.g. [-15.0, -30.0]), not "
                             f"{self.gain_db!r}")
        if not all(math.isfinite(g) and g < 0 for g in self.gain_db) or len(set(self.gain_db)) < len(self.gain_db):
            raise ValueError(f"tokenizer.gain_db must hold distinct negative levels (0 dB is always drawn), not "
                             f"{list(self.gain_db)}")
        if self.freeze_injection and not self.injection:
            raise ValueError("tokenizer.freeze_injection needs tokenizer.injection (there is no injection to freeze)")
        if self.disc_crop_seconds < 0:
            raise ValueError(f"tokenizer.disc_crop_seconds must be >= 0, not {self.disc_crop_seconds}")


@dataclass(frozen=True)
class FlowStageConfig:
    tokenizer: str = ""  # tokenizer checkpoint whose latents are modelled ("" = the bundled default)
    dim: int = 256
    depth: int = 6
    heads: int = 4
    max_seconds: float = 6.0  # training crops
    caption_dropout: float = 0.1  # for classifier-free guidance
    name: str = "dashtok-tta-small"
    # "fp32" | "bf16" | "auto" (as tokenizer.autocast): the velocity network; the loss stays fp32. bf16 made a step
    # 1.4x cheaper on an AVX-512 BF16 CPU (benchmarks/cpu_2core/flow_step.md); fp32 reproduces the
    # bundled generator.
    autocast: str = "fp32"

    def __post_init__(self) -> None:
        check_autocast("flow", self.autocast)


@dataclass(frozen=True)
class EnhanceStageConfig:
    tokenizer: str = ""  # tokenizer checkpoint ("" = the bundled default)
    dim: int = 256
    depth: int = 4
    heads: int = 4
    # "regression" (one pass, MSE on latents) or "flow" (generative: flow matching conditioned on the noisy latents;
    # its loss is "enhance/flow", alone) -- dashtok.generate.enhance
    kind: str = "regression"
    sample_steps: int = 8  # flow: Euler steps when enhancing (validation included)
    segment_frames: int = 100  # 4 s crops
    # this many more noisy/clean pairs, mixed at the start of the run from the first manifest's clips
    # (dashtok.data.mixtures.draw_mixtures: real Asterisk speech too, the corpus's noise types and SNRs), besides the
    # corpus's own mixtures
    extra_mixtures: int = 0
    # Keyed by the logged loss names: "enhance/mse" (the latents' mean squared error; "enhance/flow", alone, for a flow
    # enhancer: its flow-matching loss) and, for a regression, optionally losses on what is heard: "mel/l1" and
    # "stft/l1" between the clean audio and the enhanced latents decoded by the frozen tokenizer (gradients flow
    # through its decoder into the enhancer), on ``stft_resolutions``.
    loss_weights: dict[str, float] = field(default_factory=lambda: {"enhance/mse": 1.0})
    stft_resolutions: tuple[tuple[int, int], ...] = ((1280, 320), (512, 128), (128, 32))
    # "fp32" | "bf16" | "auto" (as tokenizer.autocast): the enhancer and, with losses on audio, the frozen decoder's
    # blocks (its iSTFT and the losses stay fp32); fp32 reproduces the bundled enhancer.
    autocast: str = "fp32"

    def __post_init__(self) -> None:
        check_autocast("enhance", self.autocast)
        check_enhancer(self.kind, self.sample_steps, "enhance.")
        known = ("enhance/mse", "mel/l1", "stft/l1") if self.kind != "flow" else ("enhance/flow",)
        if self.kind == "flow" and set(self.loss_weights) != {"enhance/flow"}:
            raise ValueError('a flow enhancer (enhance.kind = "flow") trains on its own loss alone: set '
                             f'enhance.loss_weights = {{"enhance/flow" = 1.0}}, not {sorted(self.loss_weights)}')
        unknown = set(self.loss_weights) - set(known)
        if unknown or not self.loss_weights:
            raise ValueError(f"enhance.loss_weights must name some of {', '.join(known)}; got "
                             f"{sorted(self.loss_weights)}")

    @property
    def hears(self) -> bool:
        """Whether a loss is on decoded audio (the clean audio is then kept beside the latents)."""
        return any(k in self.loss_weights for k in ("mel/l1", "stft/l1"))


@dataclass(frozen=True)
class VAEStageConfig:
    """The mel-VAE baseline (``dashtok.baselines.vae``): same latent shape and decoder as the tokenizer."""

    name: str = "mel-vae-small"
    latent_dim: int = 192
    encoder_dim: int = 256
    encoder_blocks: int = 4
    decoder_preset: str = "small"
    segment_frames: int = 32  # latent frames per training crop (1.28 s), as the tokenizer stage
    mel_weight: float = 45.0  # as the tokenizer stage's mel/l1 weight
    kl_weight: float = 1e-3


STAGES = ("mae", "tokenizer", "vae", "flow", "enhance")


@dataclass(frozen=True)
class TrainConfig:
    stage: str  # "mae" | "tokenizer" | "vae" | "flow" | "enhance"
    out: str
    seed: int = 0
    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup: int = 200
    schedule: str = "cosine"  # after the warm-up: "cosine" (to 10 % at ``steps``) or "constant"
    grad_clip: float = 1.0
    log_every: int = 20
    eval_every: int = 500
    save_every: int = 200
    threads: int = 0  # 0: torch's default
    # Wall-clock budget of the training loop of one invocation, any stage, single process (0: none): past it the run
    # saves a checkpoint and exits without exporting; the same command continues it (as after a kill, but losing no
    # steps). The setup before the loop (data, caches) and the export after it come on top.
    max_minutes: float = 0.0
    data: DataConfig = field(default_factory=DataConfig)
    mae: MAEConfig = field(default_factory=MAEConfig)
    tokenizer: TokenizerStageConfig = field(default_factory=TokenizerStageConfig)
    flow: FlowStageConfig = field(default_factory=FlowStageConfig)
    enhance: EnhanceStageConfig = field(default_factory=EnhanceStageConfig)
    vae: VAEStageConfig = field(default_factory=VAEStageConfig)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {' | '.join(STAGES)}, not {self.stage!r}")
        for key, least in (("steps", 0), ("batch_size", 1), ("save_every", 1), ("log_every", 1), ("eval_every", 1)):
            if getattr(self, key) < least:
                raise ValueError(f"{key} must be >= {least}, not {getattr(self, key)}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', not {self.schedule!r}")
        if not (math.isfinite(self.max_minutes) and self.max_minutes >= 0):
            raise ValueError(f"max_minutes must be a number >= 0, not {self.max_minutes}")
        if self.enhance.extra_mixtures < 0:
            raise ValueError(f"enhance.extra_mixtures must be >= 0, not {self.enhance.extra_mixtures}")
        if self.enhance.extra_mixtures and self.stage == "enhance" and not self.data.manifests:
            raise ValueError("enhance.extra_mixtures draws from the clips of data.manifests, which is empty")

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrainConfig:
        return dataclass_from_dict(TrainConfig, d, "training")

    @staticmethod
    def load(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        with open(path, "rb") as f:
            d = tomllib.load(f)
        for dotted, value in (overrides or {}).items():
            node = d
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return TrainConfig.from_dict(d)
