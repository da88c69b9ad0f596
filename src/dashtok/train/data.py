"""Training audio: corpus manifests, folders of audio files, or webdataset-style tar shards, held in memory.

Batches are a pure function of (seed, step, rank): ``batch_generator`` seeds a fresh generator per step, so a run
resumed at step k draws exactly the batches the uninterrupted run would have drawn, with no sampler state to save.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from dashtok.audio_io import AUDIO_EXTENSIONS, AudioError, find_audio_files, load_audio, resample
from dashtok.config import SAMPLE_RATE
from dashtok.data.manifest import read_manifest
from dashtok.train.config import DataConfig


def batch_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}/{step}/{rank}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


class AudioBank:
    """Clips as int16 arrays at 16 kHz (half the memory of float32)."""

    def __init__(self, names: list[str], clips: list[np.ndarray], domains: list[str] | None = None,
                 domain_shares: dict[str, float] | None = None, sources: list[str] | None = None) -> None:
        if not clips:
            raise ValueError("no training audio found")
        self.names = names
        self.domains = domains or ["unknown"] * len(clips)
        self.sources = sources or ["unknown"] * len(clips)  # the corpus source of each clip ("asterisk", "espeak")
        self.clips = [np.round(np.clip(c, -1, 1) * 32767).astype(np.int16) for c in clips]
        self.lengths = np.array([len(c) for c in self.clips])
        self.weights = sampling_weights(self.lengths, self.domains, domain_shares or {})
        self._cdf = np.cumsum(self.weights)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def hours(self) -> float:
        return float(self.lengths.sum()) / SAMPLE_RATE / 3600

    def audio(self, i: int) -> np.ndarray:
        return self.clips[i].astype(np.float32) / 32767

    def pick(self, gen: torch.Generator) -> int:
        """A clip index, chosen with probability proportional to its weight (its length, unless domains are
        weighted: ``sampling_weights``)."""
        u = float(torch.rand((), generator=gen)) * self._cdf[-1]
        return int(np.searchsorted(self._cdf, u, side="right"))

    def domain_hours(self) -> dict[str, float]:
        """Hours of audio per domain held in the bank (not as sampled: see ``sampled_shares``)."""
        out: dict[str, float] = {}
        for d, n in zip(self.domains, self.lengths, strict=True):
            out[d] = out.get(d, 0.0) + float(n) / SAMPLE_RATE / 3600
        return out

    def sampled_shares(self) -> dict[str, float]:
        """The chance that a draw (``pick``) comes from each domain."""
        total = float(self.weights.sum())
        out: dict[str, float] = {}
        for d, w in zip(self.domains, self.weights, strict=True):
            out[d] = out.get(d, 0.0) + float(w) / total
        return out

    def concatenated(self, n: int, gen: torch.Generator) -> np.ndarray:
        """``n`` samples made of random clips end to end (each from a random offset): a full encoder chunk."""
        out = np.zeros(n, dtype=np.float32)
        filled = 0
        while filled < n:
            clip = self.audio(self.pick(gen))
            start = int(torch.randint(0, max(1, len(clip) // 2), (), generator=gen))
            piece = clip[start : start + n - filled]
            out[filled : filled + len(piece)] = piece
            filled += len(piece)
        return out

    @staticmethod
    def from_config(cfg: DataConfig, valid: bool = False) -> AudioBank:
        names: list[str] = []
        clips: list[np.ndarray] = []
        domains: list[str] = []
        sources: list[str] = []
        for clip in training_clips(cfg, valid):
            names.append(clip.name)
            domains.append(clip.domain)
            sources.append(clip.source)
            clips.append(clip.audio)
        return AudioBank(names, clips, domains, None if valid else cfg.domain_shares, sources)


@dataclass
class TrainingClip:
    name: str
    domain: str
    source: str
    audio: np.ndarray  # 16 kHz mono float32


def training_clips(cfg: DataConfig, valid: bool = False) -> Iterator[TrainingClip]:
    """The clips of the data config one at a time, in a fixed order: the manifests' (training or validation), then
    the folders' and the tar shards' (training only). What ``AudioBank`` holds, and what a disk feature cache reads
    without holding the corpus."""
    for m in cfg.valid_manifests if valid else cfg.manifests:
        root = Path(m).parent
        rows = [c for c in read_manifest(m) if c.source not in cfg.exclude_sources]
        if valid:
            rows = rows[:: max(1, len(rows) // cfg.max_valid_clips)][: cfg.max_valid_clips]
        for c in rows:
            yield TrainingClip(c.id, c.domain, c.source, load_audio(root / c.path, SAMPLE_RATE))
    if valid:
        return
    for folder in cfg.folders:
        for f in find_audio_files(folder):
            try:
                audio = load_audio(f, SAMPLE_RATE)
            except AudioError as err:
                print(f"train: skipping {err}")
                continue
            yield TrainingClip(str(f), "unknown", "unknown", audio)
    for shard in cfg.shards:
        for name, audio in read_shard(shard):
            yield TrainingClip(name, "unknown", "unknown", audio)


def sampling_weights(lengths: np.ndarray, domains: list[str], shares: dict[str, float]) -> np.ndarray:
    """Per-clip sampling weights: proportional to length, rescaled so that each domain in ``shares`` gets that share
    of the total and the other domains share the rest (each in proportion to its length).

    A share is the chance that a draw comes from that domain. Where every draw gives one fixed-length crop (the
    tokenizer and VAE stages) that is the share of training audio; a concatenated MAE segment takes (part of) a whole
    clip per draw, so there a domain of short clips fills less than its share of the samples.
    Without ``shares`` the weights are the lengths themselves (integers), so the draws of earlier runs are kept bit
    for bit.
    """
    if not shares:
        return lengths
    bad = {d: s for d, s in shares.items() if not 0.0 <= s <= 1.0}
    if bad or sum(shares.values()) > 1.0 + 1e-9:
        raise ValueError(f"data.domain_shares must be in [0, 1] and sum to at most 1, got {shares}")
    dom = np.array(domains)
    length = lengths.astype(np.float64)
    missing = [d for d, s in shares.items() if s > 0 and not (dom == d).any()]
    if missing:
        raise ValueError(f"data.domain_shares names domains without training audio: {missing} "
                         f"(present: {sorted(set(domains))})")
    rest = ~np.isin(dom, list(shares))
    left = 1.0 - sum(shares.values())
    if rest.any() and left <= 0:
        raise ValueError(f"data.domain_shares leave no share for the domains {sorted(set(dom[rest]))}")
    weights = np.zeros_like(length)
    for d, s in shares.items():
        mask = dom == d
        if mask.any():
            weights[mask] = length[mask] / length[mask].sum() * s
    if rest.any():
        weights[rest] = length[rest] / length[rest].sum() * left
    return weights


def read_shard(path: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """Audio members of a webdataset-style tar shard (``key.flac``, ``key.wav``, ...), as 16 kHz mono float32, one
    at a time."""
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile() or Path(member.name).suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            data = tar.extractfile(member)
            if data is None:
                continue
            try:
                x, sr = sf.read(io.BytesIO(data.read()), dtype="float32", always_2d=True)
            except sf.LibsndfileError as err:
                print(f"train: skipping {path}:{member.name} ({err})")
                continue
            yield f"{path}:{member.name}", resample(x.mean(axis=1), sr, SAMPLE_RATE)


def weighted_crops(lengths: np.ndarray, size: int, crop: int, gen: torch.Generator,
                   weights: np.ndarray | None = None) -> list[tuple[int, int]]:
    """``size`` (item, start) pairs for training crops of ``crop`` frames: items drawn with replacement in
    proportion to their length (so every frame is equally likely; or to ``weights``, e.g. ``sampling_weights`` for
    domain shares), each crop starting uniformly where it fits (at 0 when the item is shorter). The one sampler of
    the stages that train on cached features or latents."""
    w = lengths if weights is None else weights
    idx = torch.multinomial(torch.from_numpy(np.asarray(w, dtype=np.float64)), size, replacement=True,
                            generator=gen).tolist()
    return [(i, int(torch.randint(0, max(1, int(lengths[i]) - crop + 1), (), generator=gen))) for i in idx]
