"""Checkpoints of models that live on one tokenizer's latents (generator, enhancer): weights, their config and the
id of that tokenizer, which is checked before use."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file

from dashtok.atomic import save_safetensors
from dashtok.checkpoint import CheckpointError, bundled_path, read_metadata
from dashtok.config import dataclass_from_dict
from dashtok.tokenizer import Tokenizer

C = TypeVar("C")


def save_tied(state: dict[str, torch.Tensor], config: Any, tokenizer_id: str, fmt: str,
              path: str | os.PathLike[str], training: dict[str, Any]) -> None:
    metadata = {"format": fmt, "config": json.dumps(asdict(config)), "tokenizer_id": tokenizer_id,
                "training": json.dumps(training)}
    save_safetensors(state, path, metadata)


def load_tied(path: str | os.PathLike[str], fmt: str, kind: str, config_cls: type[C]
              ) -> tuple[C, str, dict[str, torch.Tensor], dict[str, Any]]:
    """-> (config, tokenizer id, weights, training record); refuses a file of another format, naming it."""
    p = Path(path)
    meta = read_metadata(p)
    if meta.get("format") != fmt:
        raise CheckpointError(f"{p}: not a dashtok {kind} checkpoint (format {meta.get('format')!r})")
    config = dataclass_from_dict(config_cls, json.loads(meta["config"]))
    return config, meta["tokenizer_id"], load_file(str(p)), json.loads(meta.get("training", "{}"))


def bundled_checkpoint(path: str | os.PathLike[str] | None, bundled: str, kind: str, recipe: str) -> Path:
    """``path`` if given, else the package's bundled ``bundled`` file; a missing file is an error naming it."""
    p = Path(path) if path is not None else bundled_path(bundled)
    if not p.is_file():
        where = "no such" if path is not None else "this install has no bundled"
        raise CheckpointError(f"{p}: {where} {kind} checkpoint (train one: dashtok train {recipe})")
    return p


def require_tokenizer(tokenizer: Tokenizer | Any, tokenizer_id: str, kind: str) -> None:
    """``tokenizer``: a Tokenizer, or anything with a ``model_id`` (the VAE baseline)."""
    if tokenizer.model_id != tokenizer_id:
        raise CheckpointError(f"this {kind} was trained on latents of {tokenizer_id!r}, not of "
                              f"{tokenizer.model_id!r}: pass the matching tokenizer checkpoint")
