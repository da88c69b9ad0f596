"""Checkpoints of models that live on one tokenizer's latents (generator, enhancer): weights, their config, the id of
that tokenizer and the id of its latents (``Tokenizer.latent_id``), checked before use: the tokenizer they were
trained with, or any other that makes the same latents (a decoder fine-tuned on a frozen injection), will do."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file

from dashtok.atomic import save_safetensors
from dashtok.checkpoint import CheckpointError, bundled_path, read_metadata
from dashtok.config import dataclass_from_dict
from dashtok.tokenizer import Tokenizer

C = TypeVar("C")


@dataclass(frozen=True)
class Tie:
    """The tokenizer a generator or enhancer was trained on: its model id and the id of its latents (empty for a
    codec that has none, the VAE baseline, and in files written before latent ids)."""

    tokenizer_id: str
    latent_id: str = ""

    @classmethod
    def to(cls, codec: Tokenizer | Any) -> Tie:
        return cls(codec.model_id, getattr(codec, "latent_id", ""))

    def admits(self, codec: Tokenizer | Any) -> bool:
        return codec.model_id == self.tokenizer_id or (bool(self.latent_id) and
                                                       getattr(codec, "latent_id", "") == self.latent_id)


def save_tied(state: dict[str, torch.Tensor], config: Any, tie: Tie, fmt: str,
              path: str | os.PathLike[str], training: dict[str, Any]) -> None:
    metadata = {"format": fmt, "config": json.dumps(asdict(config)), "tokenizer_id": tie.tokenizer_id,
                "latent_id": tie.latent_id, "training": json.dumps(training)}
    save_safetensors(state, path, metadata)


def load_tied(path: str | os.PathLike[str], fmt: str, kind: str, config_cls: type[C]
              ) -> tuple[C, Tie, dict[str, torch.Tensor], dict[str, Any]]:
    """-> (config, tie, weights, training record); refuses a file of another format, naming it."""
    p = Path(path)
    meta = read_metadata(p)
    if meta.get("format") != fmt:
        raise CheckpointError(f"{p}: not a dashtok {kind} checkpoint (format {meta.get('format')!r})")
    config = dataclass_from_dict(config_cls, json.loads(meta["config"]))
    tie = Tie(meta["tokenizer_id"], meta.get("latent_id", ""))
    return config, tie, load_file(str(p)), json.loads(meta.get("training", "{}"))


def add_latent_id(path: str | os.PathLike[str], tokenizer: Tokenizer) -> Tie:
    """Give a generator or enhancer file written before latent ids the latent id of the tokenizer it names (which
    must be ``tokenizer``: same model id), so that models sharing those latents admit it; weights and record stay as
    they are. Returns the new tie."""
    p = Path(path)
    meta = read_metadata(p)
    if "tokenizer_id" not in meta:
        raise CheckpointError(f"{p}: not a generator or enhancer checkpoint (no tokenizer id)")
    if meta["tokenizer_id"] != tokenizer.model_id:
        raise CheckpointError(f"{p}: tied to {meta['tokenizer_id']!r}, not to {tokenizer.model_id!r}")
    tie = Tie(tokenizer.model_id, tokenizer.latent_id)
    save_safetensors(load_file(str(p)), p, {**meta, "latent_id": tie.latent_id})
    return tie


def bundled_checkpoint(path: str | os.PathLike[str] | None, bundled: str, kind: str, recipe: str) -> Path:
    """``path`` if given, else the package's bundled ``bundled`` file; a missing file is an error naming it."""
    p = Path(path) if path is not None else bundled_path(bundled)
    if not p.is_file():
        where = "no such" if path is not None else "this install has no bundled"
        raise CheckpointError(f"{p}: {where} {kind} checkpoint (train one: dashtok train {recipe})")
    return p


def require_tokenizer(tokenizer: Tokenizer | Any, tie: Tie, kind: str) -> None:
    """``tokenizer``: a Tokenizer, or anything with a ``model_id`` (the VAE baseline)."""
    if not tie.admits(tokenizer):
        theirs = f" ({tie.latent_id})" if tie.latent_id else " (from before latent ids: scripts/add_latent_id.py)"
        raise CheckpointError(f"this {kind} was trained on latents of {tie.tokenizer_id!r}{theirs}, not on those of "
                              f"{tokenizer.model_id!r} ({getattr(tokenizer, 'latent_id', 'no latent id')}): pass the "
                              f"matching tokenizer checkpoint")
