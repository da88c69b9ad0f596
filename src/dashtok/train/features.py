"""The tokenizer stage's training data: what the frozen encoder makes of every training clip, computed once.

The encoder is frozen, so each clip's semantic features and the injection's input patches never change: they are
computed once per run and crops are drawn from them (``FeatureCache.batch``, a pure function of the step's
generator). Held in memory by default; with ``data.feature_cache = DIR`` they are written to DIR clip by clip as the
corpus is read (one clip in memory at a time) and memory-mapped, so the process holds a table of the clips, not the
corpus, and a later run with the same data and encoder reuses them. Both give the same batches, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dashtok.atomic import atomic_write
from dashtok.audio_io import find_audio_files
from dashtok.data.manifest import read_manifest
from dashtok.tokenizer import Features, Tokenizer
from dashtok.train.config import DataConfig
from dashtok.train.data import SAMPLE_RATE, AudioBank, TrainingClip, sampling_weights, training_clips, weighted_crops


def as_int16_audio(x: np.ndarray) -> np.ndarray:
    """The 16-bit form every training clip is kept in (``AudioBank``'s): half the memory of float32."""
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def clip_features(model: Tokenizer, audio: np.ndarray, gains: torch.Tensor, min_frames: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One clip (int16) -> semantic (levels, n, D), patches (levels, n, P), audio at 0 dB (n * hop,) float32."""
    hop = model.hop_length
    x = torch.from_numpy(audio.astype(np.float32) / 32767)
    need = min_frames * hop + model.config.min_num_samples
    if len(x) < need:  # short clips (drum hits) are padded with silence to one training crop
        x = torch.nn.functional.pad(x, (0, need - len(x)))
    with torch.no_grad():
        feats = [model.features((x * gain)[None].to(model.device)) for gain in gains.tolist()]
    n = int(feats[0].lengths[0])
    semantic = torch.stack([f.semantic[0, :n] for f in feats]).cpu()
    patches = torch.stack([f.patches[0, :n] for f in feats]).cpu()
    # n frames can span up to 3 mel hops past the audio's end (1 + L // 160 frames): pad with zeros
    return semantic, patches, torch.nn.functional.pad(x, (0, max(0, n * hop - len(x))))[: n * hop]


class MappedClips(Sequence[torch.Tensor]):
    """Clip i of a flat float32 file as a tensor of ``shape(i)``, read from the memory map (nothing held)."""

    def __init__(self, path: Path, offsets: list[int], shapes: list[tuple[int, ...]]) -> None:
        # copy-on-write: torch may view it without warnings; an empty file (no injection: no patches) cannot be mapped
        self.data = np.memmap(path, dtype=np.float32, mode="c") if path.stat().st_size else np.zeros(0, np.float32)
        self.offsets, self.shapes = offsets, shapes

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> torch.Tensor:  # type: ignore[override]
        size = int(np.prod(self.shapes[i]))
        return torch.from_numpy(self.data[self.offsets[i] : self.offsets[i] + size].reshape(self.shapes[i]))


class FeatureCache:
    """Frozen-encoder outputs (and injection inputs) of every training clip, computed once: they never change.

    With ``gains_db``, each clip is also encoded at those input levels (the encoder is not level-invariant), and
    every crop of ``batch`` takes one level, uniformly, with its audio scaled to match.
    """

    semantic: Sequence[torch.Tensor]  # per clip: (levels, frames, dim)
    patches: Sequence[torch.Tensor]
    audio: Sequence[torch.Tensor]  # per clip, at 0 dB

    def __init__(self, model: Tokenizer, bank: AudioBank, min_frames: int, gains_db: tuple[float, ...] = ()) -> None:
        self.gains = gains_tensor(gains_db)
        parts = [clip_features(model, bank.clips[i], self.gains, min_frames) for i in range(len(bank))]
        self.semantic, self.patches, self.audio = ([p[k] for p in parts] for k in range(3))
        self.frames = np.array([s.shape[1] for s in self.semantic])
        self.samples = bank.lengths
        # data.domain_shares: draw clips by the bank's weights; without shares, by frames, as runs always have
        self.weights = None if bank.weights is bank.lengths else bank.weights

    @property
    def hours(self) -> float:
        return float(np.sum(self.samples)) / SAMPLE_RATE / 3600

    def batch(self, gen: torch.Generator, size: int, frames: int, hop: int) -> tuple[Features, torch.Tensor]:
        crops = weighted_crops(self.frames, size, frames, gen, self.weights)
        # only runs with levels draw them: the batches of runs without stay what they were
        levels = [0] * size
        if len(self.gains) > 1:
            levels = torch.randint(0, len(self.gains), (size,), generator=gen).tolist()
        sem, pat, aud = [], [], []
        for (i, start), level in zip(crops, levels, strict=True):
            sem.append(self.semantic[i][level, start : start + frames])
            pat.append(self.patches[i][level, start : start + frames])
            aud.append(self.audio[i][start * hop : (start + frames) * hop] * self.gains[level])
        lengths = torch.full((size,), frames, dtype=torch.long)
        return Features(torch.stack(sem), torch.stack(pat), lengths), torch.stack(aud)

    @classmethod
    def on_disk(cls, model: Tokenizer, data: DataConfig, directory: Path, min_frames: int,
                gains_db: tuple[float, ...] = (), rank: int = 0) -> FeatureCache:
        """The cache in ``directory/KEY``: reused when it was made from the same data, encoder and levels (the key),
        else made there by rank 0 (reading the corpus one clip at a time) while other ranks wait for it. A cache of
        other data goes to a folder of its own, so a run still reading one is never overwritten."""
        key = cache_key(model, data, min_frames, gains_db)
        directory = directory / key
        meta_path = directory / "meta.json"
        if read_meta(meta_path, key) is None:
            if rank == 0:
                write_cache(model, training_clips(data), directory, key, gains_tensor(gains_db), min_frames)
            else:
                wait_for(meta_path, key)
        meta = read_meta(meta_path, key)
        assert meta is not None
        self = cls.__new__(cls)
        self.gains = gains_tensor(gains_db)
        clips = meta["clips"]
        self.semantic = MappedClips(directory / "semantic.f32", [c["semantic"] for c in clips],
                                    [tuple(c["semantic_shape"]) for c in clips])
        self.patches = MappedClips(directory / "patches.f32", [c["patches"] for c in clips],
                                   [tuple(c["patches_shape"]) for c in clips])
        self.audio = MappedClips(directory / "audio.f32", [c["audio"] for c in clips],
                                 [(c["audio_samples"],) for c in clips])
        self.frames = np.array([c["semantic_shape"][1] for c in clips])
        self.samples = np.array([c["samples"] for c in clips])
        weights = sampling_weights(self.samples, [c["domain"] for c in clips], data.domain_shares)
        self.weights = None if weights is self.samples else weights
        return self


def gains_tensor(gains_db: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor([1.0] + [10 ** (g / 20) for g in gains_db])


def cache_key(model: Tokenizer, data: DataConfig, min_frames: int, gains_db: tuple[float, ...]) -> str:
    """What the cached features depend on: the training data, the frozen encoder's config and weights, the levels
    and the shortest crop."""
    digest = hashlib.sha256()
    frozen_state = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    if model.injection is not None:  # its front end's filterbank and window
        frozen_state |= {f"injection.{k}": v for k, v in model.injection.named_buffers()}
    for name, value in sorted(frozen_state.items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().float().contiguous().numpy().tobytes())
    frozen = {k: v for k, v in model.config.to_dict().items() if k in ("frontend", "encoder", "injection")}
    clips = [str(Path(m).parent / c.path) for m in data.manifests for c in read_manifest(m)]
    files = [*data.manifests, *clips, *data.shards, *(str(f) for d in data.folders for f in find_audio_files(d))]
    stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]  # an edited manifest or clip: new key
    digest.update(json.dumps({"files": stats, "exclude_sources": list(data.exclude_sources), "config": frozen,
                              "min_frames": min_frames, "gains_db": list(gains_db)}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def read_meta(path: Path, key: str) -> dict[str, Any] | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if meta.get("key") == key else None


def write_cache(model: Tokenizer, clips: Iterable[TrainingClip], directory: Path, key: str, gains: torch.Tensor,
                min_frames: int) -> None:
    """Compute every clip's features and append them to three flat float32 files; ``meta.json`` (written last,
    atomically) says where each clip lies and makes the cache valid."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").unlink(missing_ok=True)
    rows: list[dict[str, Any]] = []
    offsets = {"semantic": 0, "patches": 0, "audio": 0}
    files = {name: (directory / f"{name}.f32").open("wb") for name in offsets}
    try:
        for clip in clips:
            audio = as_int16_audio(clip.audio)
            parts = dict(zip(offsets, clip_features(model, audio, gains, min_frames), strict=True))
            row: dict[str, Any] = {"name": clip.name, "domain": clip.domain, "samples": len(audio),
                                   "semantic_shape": list(parts["semantic"].shape),
                                   "patches_shape": list(parts["patches"].shape),
                                   "audio_samples": int(parts["audio"].shape[0])}
            for name, tensor in parts.items():
                row[name] = offsets[name]
                files[name].write(tensor.float().contiguous().numpy().tobytes())
                offsets[name] += tensor.numel()
            rows.append(row)
    finally:
        for f in files.values():
            f.close()
    if not rows:
        raise ValueError("no training audio found")
    with atomic_write(directory / "meta.json") as tmp:
        tmp.write_text(json.dumps({"key": key, "clips": rows}) + "\n")


def wait_for(path: Path, key: str, poll_s: float = 5.0) -> None:
    """Other ranks wait for rank 0's cache (however long the corpus takes: no collective timeout applies)."""
    t0 = time.perf_counter()
    said = 0.0
    while read_meta(path, key) is None:
        if time.perf_counter() - t0 - said > 600:
            said = time.perf_counter() - t0
            print(f"train: waiting for rank 0's feature cache {path.parent} ({said / 60:.0f} min)", file=sys.stderr)
        time.sleep(poll_s)
