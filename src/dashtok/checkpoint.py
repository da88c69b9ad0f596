"""Checkpoint files: safetensors with the config as JSON metadata, and a loud port of upstream Dasheng weights.

This module reads and writes files and configs; the model classes build themselves from what it returns
(``Tokenizer.load``/``save``), so it never imports them back.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from dashtok.atomic import save_safetensors
from dashtok.config import (
    ENCODER_PRESETS,
    EncoderConfig,
    FrontendConfig,
    TokenizerConfig,
    TopDbScope,
)
from dashtok.encoder import DashengEncoder
from dashtok.version import __version__

FORMAT = "dashtok/2"
MODEL_FILENAME = "model.safetensors"
# dashtok/1 (before the release-faithful injection): the injection read the encoder's mel patch, the upsampler
# mapped straight to the decoder width and the head capped the log-magnitude at 4.6. Those models still load.
LEGACY_FORMATS = ("dashtok/1",)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


def bundled_path(name: str) -> Path:
    """A file shipped inside the package, under ``dashtok/assets``."""
    return Path(str(resources.files("dashtok") / "assets" / name))


def default_checkpoint_path() -> Path:
    """The bundled default model, shipped inside the package."""
    return bundled_path("default.safetensors")


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file, or a directory holding ``model.safetensors``."""
    p = Path(path)
    if p.is_dir():
        if (p / "config.json").is_file():  # official layouts are recognised before this (dashtok.release)
            try:
                raw = json.loads((p / "config.json").read_text())
            except (OSError, ValueError) as err:
                raise CheckpointError(f"{p}: config.json is not readable JSON ({' '.join(str(err).split())[:200]})"
                                      ) from None
            kind = raw.get("model_type") if isinstance(raw, dict) else None
            raise CheckpointError(f"{p}: config.json is not a DashengTokenizer config (model_type {kind!r}, "
                                  f"expected 'dashengtokenizer')")
        if not (p / MODEL_FILENAME).is_file():
            raise CheckpointError(f"{p}: neither a dashtok checkpoint directory ({MODEL_FILENAME}) nor an official "
                                  f"DashengTokenizer directory (config.json + {MODEL_FILENAME})")
        p = p / MODEL_FILENAME
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    return p


def write_checkpoint(path: str | os.PathLike[str], state: dict[str, torch.Tensor], config: TokenizerConfig,
                     training: dict[str, Any]) -> tuple[str, str]:
    """Write weights + config + training record atomically; returns the model id (``name@weights-hash``) and the
    latent id (:func:`latent_id`)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    model_id, latents = f"{config.name}@{weights_hash(tensors)}", latent_id(tensors, config)
    metadata = {
        "format": FORMAT,
        "config": config.to_json(),
        "config_hash": config.hash,
        "name": config.name,
        "model_id": model_id,
        "latent_id": latents,
        "dashtok_version": __version__,
        "training": json.dumps(training, sort_keys=True),
    }
    save_safetensors(tensors, path, metadata)
    return model_id, latents


@dataclass
class Checkpoint:
    """What a dashtok checkpoint file holds."""

    path: Path
    config: TokenizerConfig
    state: dict[str, torch.Tensor]
    training: dict[str, Any]
    model_id: str
    latent_id: str  # as stored; empty in files from before latent ids, or when top_db_scope changed the front end


def weights_hash(tensors: dict[str, torch.Tensor]) -> str:
    """Short hash of the weights: tells two checkpoints of the same architecture apart."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:12]


# What a decoder reads but does not make: weights under these prefixes do not change a model's latents.
DECODING = ("decoder.", "head.")


def latent_id(state: dict[str, torch.Tensor], config: TokenizerConfig) -> str:
    """``latents@hash`` of everything that makes a model's latents: the front-end, encoder and injection config and
    weights, and the latent statistics (what generators normalise with). Two models with the same latent id make the
    same latents, bit for bit, whatever their decoders: latents stored with one decode with the other, and generators
    and enhancers trained on one work with the other (a decoder-only fine-tune, ``tokenizer.freeze_injection``)."""
    weights = weights_hash({k: v for k, v in state.items() if not k.startswith(DECODING)})
    return "latents@" + hashlib.sha256(f"{config.latent_hash}:{weights}".encode()).hexdigest()[:12]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"{p}: not a readable safetensors file ({err})") from None


def read_checkpoint(path: str | os.PathLike[str], top_db_scope: TopDbScope | None = None) -> Checkpoint:
    """A dashtok checkpoint (file, or directory holding model.safetensors); ``dashtok/1`` configs are migrated.
    ``top_db_scope`` ("example" / "batch") overrides the stored choice."""
    p = resolve_checkpoint(path)
    meta = read_metadata(p)
    fmt = meta.get("format")
    if fmt != FORMAT and fmt not in LEGACY_FORMATS:
        raise CheckpointError(f"{p}: not a dashtok checkpoint (format {fmt!r}, expected {FORMAT!r})")
    try:
        raw = json.loads(meta["config"])
        config = TokenizerConfig.from_dict(migrate_v1_config(raw) if fmt in LEGACY_FORMATS else raw)
        if top_db_scope is not None:
            config = replace(config, frontend=replace(config.frontend, top_db_scope=top_db_scope))
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"{p}: bad config in metadata ({err})") from None
    state = load_file(str(p))
    return Checkpoint(path=p, config=config, state=state, training=json.loads(meta.get("training", "{}")),
                      model_id=meta.get("model_id") or f"{config.name}@{weights_hash(state)}",
                      # not the stored id when the front end was changed on loading (top_db_scope: other latents)
                      latent_id=meta.get("latent_id", "") if top_db_scope is None else "")


def migrate_v1_config(config: dict[str, Any]) -> dict[str, Any]:
    """A dashtok/1 config in today's terms: same computation, spelled with the fields that replaced the old ones."""
    decoder = dict(config.get("decoder", {}))
    log_cap = float(decoder.pop("max_log_magnitude", 4.6))
    # exp(clamp(x, c)) == min(exp(x), exp(c)) with exp(c) rounded as float32 computes it
    decoder["max_magnitude"] = float(torch.exp(torch.tensor(log_cap, dtype=torch.float32)))
    decoder["upsampler_width"] = "decoder"
    injection = {**config.get("injection", {}), "front_end": "encoder_mel"}
    return {**config, "decoder": decoder, "injection": injection}


def strict_load(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """load_state_dict(strict=True), but reporting every missing/unexpected key and shape mismatch at once."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    raise_mismatches(f"{source}: weights do not match the model", missing, unexpected, shapes)
    module.load_state_dict(state, strict=True)


def raise_mismatches(headline: str, missing: list[str], unexpected: list[str], shapes: list[str],
                     problems: tuple[str, ...] = ()) -> None:
    """One CheckpointError naming every missing, unexpected and mis-shaped key (and other problems), if any."""
    if not (missing or unexpected or shapes or problems):
        return
    lines = [headline]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    if shapes:
        lines.append(f"  shape mismatches ({len(shapes)}): {'; '.join(shapes)}")
    lines += [f"  {p}" for p in problems]
    raise CheckpointError("\n".join(lines))


# ---- upstream Dasheng --------------------------------------------------------------------------------------------
_HEADS_BY_WIDTH = {cfg.embed_dim: cfg.num_heads for cfg in ENCODER_PRESETS.values()}
# Upstream constructor arguments that change the architecture in ways this port does not implement.
_UNSUPPORTED = {"pooling": "mean", "init_values": None, "center": True, "block_type": "Block",
                "attention_type": "Attention"}


def dasheng_configs(upstream: dict[str, Any], state: dict[str, torch.Tensor],
                    num_heads: int | None = None) -> tuple[FrontendConfig, EncoderConfig]:
    """Our configs from an upstream checkpoint's ``config`` dict (missing sizes are read off the weights)."""
    for key, supported in _UNSUPPORTED.items():
        if key in upstream and upstream[key] != supported:
            raise CheckpointError(f"upstream config {key}={upstream[key]!r} is not supported (only {supported!r})")
    patch = tuple(upstream.get("patch_size", (64, 4)))
    if tuple(upstream.get("patch_stride", patch)) != patch:
        raise CheckpointError(f"upstream patch_stride {upstream.get('patch_stride')} != patch_size {patch}")
    embed_dim = int(state["patch_embed.proj.weight"].shape[0]) if "patch_embed.proj.weight" in state \
        else int(upstream.get("embed_dim", 768))
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")}) or int(upstream.get("depth", 12))
    heads = num_heads or upstream.get("num_heads") or _HEADS_BY_WIDTH.get(embed_dim)
    if heads is None:
        raise CheckpointError(f"cannot tell the number of heads of a {embed_dim}-d Dasheng; pass num_heads")
    frontend = FrontendConfig(
        n_fft=int(upstream.get("n_fft", 512)), win_length=int(upstream.get("win_size", 512)),
        hop_length=int(upstream.get("hop_size", 160)), n_mels=int(upstream.get("n_mels", 64)),
        f_min=float(upstream.get("f_min", 0)), f_max=float(upstream.get("f_max", 8000)),
        top_db=float(upstream.get("top_db", 120)))
    if patch[0] != frontend.n_mels:
        raise CheckpointError(f"upstream patch height {patch[0]} must span all {frontend.n_mels} mel bins")
    encoder = EncoderConfig(embed_dim=embed_dim, depth=depth, num_heads=int(heads),
                            mlp_ratio=float(upstream.get("mlp_ratio", 4.0)),
                            qkv_bias=bool(upstream.get("qkv_bias", True)), patch_frames=int(patch[1]),
                            target_length=int(upstream.get("target_length", 1008)))
    return frontend, encoder


def port_dasheng_state_dict(encoder: DashengEncoder, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load upstream weights under their own names; any key or shape difference raises, naming all of them."""
    strict_load(encoder, state, source)


ENCODER_FORMAT = "dashtok-encoder/1"


def save_encoder(encoder: DashengEncoder, path: str | os.PathLike[str], training: dict[str, Any] | None = None) -> None:
    """A Dasheng encoder alone (upstream key names), with its configs: what MAE pretraining produces."""
    metadata = {"format": ENCODER_FORMAT, "frontend": json.dumps(asdict(encoder.frontend_config)),
                "encoder": json.dumps(asdict(encoder.config)), "training": json.dumps(training or {})}
    save_safetensors(encoder.state_dict(), path, metadata)


def load_encoder(path: str | os.PathLike[str]) -> DashengEncoder:
    p = Path(path)
    meta = read_metadata(p)
    if meta.get("format") != ENCODER_FORMAT:
        raise CheckpointError(f"{p}: not a dashtok encoder file (format {meta.get('format')!r})")
    frontend = FrontendConfig(**json.loads(meta["frontend"]))
    encoder = DashengEncoder(frontend, EncoderConfig(**json.loads(meta["encoder"])))
    strict_load(encoder, load_file(str(p)), p)
    return encoder.eval()


def load_dasheng_checkpoint(path: str | os.PathLike[str], num_heads: int | None = None,
                            top_db_scope: str = "example") -> DashengEncoder:
    """An upstream Dasheng checkpoint (a torch file holding ``model`` and ``config``) -> our frozen encoder.

    Loaded with ``weights_only=True``: no code from the file runs.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such file")
    try:
        dump = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{p}: not a loadable torch checkpoint ({err})") from None
    if not isinstance(dump, dict) or "model" not in dump:
        raise CheckpointError(f"{p}: expected a dict with 'model' (and 'config'), got "
                              f"{sorted(dump) if isinstance(dump, dict) else type(dump).__name__}")
    state, upstream = dump["model"], dict(dump.get("config") or {})
    frontend, config = dasheng_configs(upstream, state, num_heads)
    frontend = FrontendConfig(**{**frontend.__dict__, "top_db_scope": top_db_scope})
    encoder = DashengEncoder(frontend, config)
    port_dasheng_state_dict(encoder, state, p)
    return encoder.eval()
