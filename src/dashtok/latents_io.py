"""Self-describing, versioned latent files (safetensors, no pickle).

Tensors: ``latents`` (N, D) for one clip, or (B, N, D) plus ``lengths`` (B,) for several.
Metadata: ``format``, ``version``, ``sample_rate``, ``frame_rate``, ``original_num_samples`` (JSON list),
``latent_dim``, ``kind`` ("latents" or "semantic"), ``model_id`` (name@weights-hash), ``config_hash``, ``source``,
``latent_id`` (``Tokenizer.latent_id``: latents made by one model decode without a flag with any that shares it).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from safetensors import safe_open

from dashtok.atomic import atomic_write, save_safetensors

LATENT_FORMAT = "dashtok-latents"
# 2: written since the release-faithful injection (checkpoint format dashtok/2). Version 1 files came from the old
# injection; even the old models, which still load, now carry a new config hash, so their latents are re-encoded.
LATENT_VERSION = 2


class LatentFileError(ValueError):
    """A latent file that cannot be used; the message names the file."""


@dataclass
class LatentFile:
    latents: torch.Tensor  # (N, D) or (B, N, D)
    sample_rate: int
    frame_rate: float
    original_num_samples: list[int]
    model_id: str
    config_hash: str
    lengths: torch.Tensor | None = None  # (B,) when batched
    kind: str = "latents"
    source: str = ""
    latent_id: str = ""  # of the model that made them (``Tokenizer.latent_id``); empty in files made before it

    @property
    def latent_dim(self) -> int:
        return int(self.latents.shape[-1])

    def batched(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, D) latents and (B,) lengths, whichever way they are stored."""
        if self.latents.ndim == 2:
            return self.latents.unsqueeze(0), torch.tensor([self.latents.shape[0]])
        lengths = self.lengths if self.lengths is not None else torch.full((self.latents.shape[0],),
                                                                           self.latents.shape[1])
        return self.latents, lengths


def _metadata(lf: LatentFile, latent_dim: int) -> dict[str, str]:
    return {
        "format": LATENT_FORMAT, "version": str(LATENT_VERSION), "sample_rate": str(lf.sample_rate),
        "frame_rate": repr(float(lf.frame_rate)), "original_num_samples": json.dumps(lf.original_num_samples),
        "latent_dim": str(latent_dim), "kind": lf.kind, "model_id": lf.model_id,
        "config_hash": lf.config_hash, "source": lf.source, "latent_id": lf.latent_id,
    }


def write_latents(path: str | os.PathLike[str], lf: LatentFile) -> None:
    tensors = {"latents": lf.latents.detach().cpu().float().contiguous()}
    if lf.latents.ndim == 3:
        lengths = lf.lengths if lf.lengths is not None else torch.full((lf.latents.shape[0],), lf.latents.shape[1])
        tensors["lengths"] = lengths.detach().cpu().long().contiguous()
    save_safetensors(tensors, path, _metadata(lf, lf.latent_dim))


class LatentWriter:
    """Appends (n, D) float32 frames to a latent file whose header (shape (N, D)) was written first."""

    def __init__(self, handle: BinaryIO, num_frames: int, latent_dim: int) -> None:
        self._handle = handle
        self.num_frames, self.latent_dim = num_frames, latent_dim
        self.written = 0

    def write(self, frames: torch.Tensor) -> None:
        if frames.ndim != 2 or frames.shape[1] != self.latent_dim or self.written + frames.shape[0] > self.num_frames:
            raise ValueError(f"frames of shape {tuple(frames.shape)} do not fit a ({self.num_frames}, "
                             f"{self.latent_dim}) latent file holding {self.written} frames")
        self._handle.write(frames.detach().cpu().float().contiguous().numpy().astype("<f4").tobytes())
        self.written += frames.shape[0]


@contextmanager
def latent_writer(path: str | os.PathLike[str], num_frames: int, meta: LatentFile) -> Iterator[LatentWriter]:
    """Write one clip's latents (N, D) frame block by frame block, in bounded memory, atomically: a safetensors
    file like ``write_latents``'s (header first, data appended). ``meta`` gives the metadata (its ``latents`` may be
    an empty (0, D) tensor: only its width is read). Fewer frames than ``num_frames`` at the end is an error."""
    d = int(meta.latents.shape[-1])
    header = {"__metadata__": _metadata(meta, d),
              "latents": {"dtype": "F32", "shape": [num_frames, d], "data_offsets": [0, 4 * num_frames * d]}}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-(8 + len(blob)) % 8)  # safetensors aligns the data to 8 bytes with spaces
    with atomic_write(path) as tmp, tmp.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        writer = LatentWriter(f, num_frames, d)
        yield writer
        if writer.written != num_frames:
            raise ValueError(f"{path}: {writer.written} latent frames written, the header says {num_frames}")


def read_latents(path: str | os.PathLike[str]) -> LatentFile:
    """Read and validate a latent file; every problem raises :class:`LatentFileError` naming the file."""
    p = Path(path)
    if not p.is_file():
        raise LatentFileError(f"{p}: no such file")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
            keys = set(f.keys())
            tensors = {k: f.get_tensor(k) for k in keys}
    except Exception as err:  # safetensors raises several types for a damaged file
        raise LatentFileError(f"{p}: not a readable latent file ({err})") from None
    if meta.get("format") != LATENT_FORMAT:
        raise LatentFileError(f"{p}: not a dashtok latent file (format {meta.get('format')!r})")
    version = meta.get("version", "?")
    if version == "1":
        raise LatentFileError(f"{p}: latent file version 1 was written by dashtok before the release-faithful "
                              f"acoustic injection (checkpoint format dashtok/2); re-encode the audio with this "
                              f"dashtok")
    if version != str(LATENT_VERSION):
        raise LatentFileError(f"{p}: latent file version {version} is not supported by this dashtok "
                              f"(it reads version {LATENT_VERSION})")
    if "latents" not in tensors:
        raise LatentFileError(f"{p}: has no 'latents' tensor")
    z = tensors["latents"]
    try:
        dim = int(meta["latent_dim"])
        lf = LatentFile(latents=z, sample_rate=int(meta["sample_rate"]), frame_rate=float(meta["frame_rate"]),
                        original_num_samples=[int(n) for n in json.loads(meta["original_num_samples"])],
                        model_id=meta.get("model_id", ""), config_hash=meta.get("config_hash", ""),
                        lengths=tensors.get("lengths"), kind=meta.get("kind", "latents"),
                        source=meta.get("source", ""), latent_id=meta.get("latent_id", ""))
    except (KeyError, ValueError, TypeError) as err:
        raise LatentFileError(f"{p}: bad metadata ({err})") from None
    if z.ndim not in (2, 3) or z.shape[-1] != dim:
        raise LatentFileError(f"{p}: latents of shape {tuple(z.shape)} do not match latent_dim {dim}")
    if not bool(torch.isfinite(z).all()):
        raise LatentFileError(f"{p}: latents contain NaN or Inf")
    n_items = 1 if z.ndim == 2 else z.shape[0]
    if len(lf.original_num_samples) != n_items:
        raise LatentFileError(f"{p}: {len(lf.original_num_samples)} original lengths for {n_items} clips")
    return lf


def check_compatible(lf: LatentFile, model_id: str, config_hash: str, latent_dim: int, source: str,
                     any_weights: bool = False, latent_id: str = "") -> None:
    """Raise unless the latents were made by this model, or by one that makes the same latents (``latent_id``:
    another decoder on the same encoder and injection), or (with ``any_weights``) one of the same architecture."""
    if lf.kind != "latents":
        raise LatentFileError(f"{source}: holds {lf.kind} features, which the decoder was not trained on")
    if lf.latent_dim != latent_dim:
        raise LatentFileError(f"{source}: {lf.latent_dim}-d latents from model {lf.model_id!r}, but this model "
                              f"decodes {latent_dim}-d latents")
    if lf.latent_id and lf.latent_id == latent_id:
        return
    if lf.config_hash != config_hash:
        raise LatentFileError(f"{source}: latents were made by model {lf.model_id!r} (config {lf.config_hash}), "
                              f"not by this model {model_id!r} (config {config_hash}); decode with the matching "
                              f"--checkpoint")
    if lf.model_id != model_id and not any_weights:
        raise LatentFileError(f"{source}: latents were made by model {lf.model_id!r}, this model is {model_id!r} "
                              f"(same architecture, other weights); use the matching --checkpoint, or "
                              f"--any-weights to decode anyway")
