"""The official DashengTokenizer release's layout, both ways.

The release (Hugging Face ``mispeech/dashengtokenizer``, loaded there with ``trust_remote_code``) is a directory
with ``config.json`` (``model_type: dashengtokenizer``) and ``model.safetensors``. Its config maps to
:class:`TokenizerConfig` (``config_from_official``), its tensors to dashtok's by one explicit table (``KEY_TABLE``),
strictly: every missing, unexpected or mis-shaped key is named, and the buffers dashtok derives from the config
(windows, filterbanks) are checked against the file when the file has them. ``save_official`` writes a dashtok
model in that layout, refusing what the layout cannot express, so models trained here run in the official code.

What the release computes equals dashtok with ``injection.front_end="acoustic"``, ``decoder.upsampler_width=
"latent"`` and ``decoder.max_magnitude=100``, except on padded batches (the release does not mask padding; dashtok
computes each item as it is alone) and in the semantic dB floor of a batch (torchaudio floors over the whole batch;
load with ``top_db_scope="batch"`` to reproduce it).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from dashtok.atomic import save_safetensors
from dashtok.checkpoint import CheckpointError, raise_mismatches
from dashtok.config import (
    DecoderConfig,
    EncoderConfig,
    FrontendConfig,
    InjectionConfig,
    TokenizerConfig,
    TopDbScope,
)

HUB_REPO = "mispeech/dashengtokenizer"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")  # owner/name, as the hub spells repositories
MODEL_TYPE = "dashengtokenizer"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# config.json's architecture keys and the release's defaults (its DashengTokenizerConfig)
ARCHITECTURE_DEFAULTS: dict[str, int] = {
    "embed_dim": 1280, "depth": 32, "num_heads": 16, "decoder_embed_dim": 1280, "decoder_depth": 12,
    "decoder_intermediate_size": 5120, "istft_n_fft": 1280, "istft_hop": 320, "upsample_tokens": 2,
    "n_mels_patch": 128, "hop_length": 160}
# keys Hugging Face writes into every config.json; they do not change the computation
_BOOKKEEPING = {"architectures", "auto_map", "model_type", "dtype", "torch_dtype", "transformers_version",
                "_name_or_path", "return_dict", "output_hidden_states", "output_attentions", "torchscript",
                "use_return_dict", "tie_word_embeddings", "is_encoder_decoder", "chunk_size_feed_forward",
                "pruned_heads", "id2label", "label2id", "problem_type", "tf_legacy_loss", "use_bfloat16"}
_AUTO_MAP = {"AutoConfig": f"{HUB_REPO}--configuration_dasheng_tokenizer.DashengTokenizerConfig",
             "AutoModel": f"{HUB_REPO}--modeling_dasheng_tokenizer.DashengTokenizerModel"}

# The key table: official name prefix -> dashtok name prefix. Every official tensor is renamed by exactly one row.
KEY_TABLE: tuple[tuple[str, str], ...] = (
    ("encoder.model.", "encoder."),  # the frozen Dasheng encoder: upstream names on both sides
    ("encoder.front_end.mel_spec.", "injection.front_end.mel_spec."),  # acoustic front end buffers (derived)
    ("encoder.patch_embed.", "injection.proj."),  # Conv2d (D, 1, M, 4) == Linear (D, M * 4), mel-major
    ("encoder.norm.", "injection.norm."),  # the injection's LayerNorm
    ("upsampler.", "decoder.upsample."),  # ConvTranspose1d, kernel = stride = 2
    ("decoder.backbone.embed.", "decoder.embed."),
    ("decoder.backbone.norm.", "decoder.norm."),
    ("decoder.backbone.convnext.", "decoder.blocks."),  # .N.{dwconv, norm, pwconv1, pwconv2, gamma}
    ("decoder.backbone.final_layer_norm.", "decoder.final_norm."),
    ("decoder.head.out.", "head.out."),
    ("decoder.head.istft.", "head.istft."),  # the iSTFT window (derived)
)
# Buffers a file may or may not hold. Derived ones are checked against dashtok's when present; the BatchNorm
# counter does not change inference and is taken from the file when present (0 otherwise).
DERIVED_BUFFERS = ("encoder.front_end.0.spectrogram.window", "encoder.front_end.0.mel_scale.fb",
                   "injection.front_end.mel_spec.spectrogram.window", "injection.front_end.mel_spec.mel_scale.fb",
                   "head.istft.window")
OPTIONAL_BUFFERS = DERIVED_BUFFERS + ("encoder.init_bn.1.num_batches_tracked",)
# dashtok state the release does not have: the release normalises no latents (kept in metadata on export)
DASHTOK_ONLY = ("latent_mean", "latent_std")


def to_dashtok_key(key: str) -> str | None:
    for official, ours in KEY_TABLE:
        if key.startswith(official):
            return ours + key[len(official):]
    return None


def to_official_key(key: str) -> str | None:
    for official, ours in KEY_TABLE:
        if key.startswith(ours):
            return official + key[len(ours):]
    return None


# ---- recognising and resolving ------------------------------------------------------------------------------------
def is_official_dir(path: str | os.PathLike[str]) -> bool:
    """A directory holding a ``config.json`` of model_type ``dashengtokenizer``."""
    cfg = Path(path) / CONFIG_FILE
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def hub_cache_dir() -> Path:
    """Hugging Face's hub cache, as huggingface_hub finds it (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def snapshot_of_cache_folder(folder: Path) -> Path | None:
    """The snapshot a hub cache folder (``models--owner--name``) points to: ``refs/main``, else its only one."""
    snapshots = folder / "snapshots"
    ref = folder / "refs" / "main"
    if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
        return snapshots / ref.read_text().strip()
    found = sorted(p for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []
    return found[0] if len(found) == 1 else None


def resolve_hub(repo_id: str) -> Path:
    """A hub repository id -> its local snapshot directory: the cache first; a download only when
    huggingface_hub is installed and ``HF_HUB_OFFLINE`` is not set."""
    folder = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"
    where = f"no such local file or directory, and not in the Hugging Face cache ({folder})"
    snapshot = snapshot_of_cache_folder(folder) if folder.is_dir() else None
    if snapshot is not None and (snapshot / CONFIG_FILE).is_file() and (snapshot / WEIGHTS_FILE).is_file():
        return snapshot
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    howto = (f"download it first (`huggingface-cli download {repo_id} config.json model.safetensors`, or "
             f"`hf download ...`) or pass the local directory that holds config.json and model.safetensors")
    if offline:
        raise CheckpointError(f"{repo_id}: {where}; HF_HUB_OFFLINE is set; {howto}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(f"{repo_id}: {where}; huggingface_hub is not installed to fetch it; {howto}") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]))
    except Exception as err:  # network or hub errors of several types
        reason = " ".join(str(err).split())[:300]  # one line, as every dashtok error
        raise CheckpointError(f"{repo_id}: {where}; the download failed ({type(err).__name__}: {reason}); "
                              f"{howto}") from None


# ---- config --------------------------------------------------------------------------------------------------------
def config_from_official(raw: dict[str, Any], source: Path, top_db_scope: TopDbScope = "example",
                         name: str = "dashengtokenizer") -> TokenizerConfig:
    """config.json -> TokenizerConfig; anything dashtok cannot build is refused with the file and the reason."""
    if raw.get("model_type") != MODEL_TYPE:
        raise CheckpointError(f"{source}: model_type {raw.get('model_type')!r} is not {MODEL_TYPE!r}")
    unknown = sorted(k for k in set(raw) - set(ARCHITECTURE_DEFAULTS) - _BOOKKEEPING
                     if not k.startswith("_"))  # transformers' private keys (e.g. _attn_implementation_autoset)
    if unknown:
        raise CheckpointError(f"{source}: unknown config keys {unknown}; this dashtok knows the release's "
                              f"architecture keys {sorted(ARCHITECTURE_DEFAULTS)}")
    arch = {**ARCHITECTURE_DEFAULTS, **{k: raw[k] for k in ARCHITECTURE_DEFAULTS if k in raw}}
    bad = [f"{k}={v!r}" for k, v in arch.items() if not isinstance(v, int) or isinstance(v, bool) or v <= 0]
    if bad:
        raise CheckpointError(f"{source}: architecture values must be positive integers: {', '.join(bad)}")
    if arch["hop_length"] != FrontendConfig().hop_length:
        raise CheckpointError(f"{source}: hop_length={arch['hop_length']} is not supported: the acoustic patches "
                              f"line up with the semantic tokens only at the encoder's hop of 160 samples")
    dtype = raw.get("dtype", raw.get("torch_dtype", "float32"))
    if dtype not in ("float32", "float16", "bfloat16", None):
        raise CheckpointError(f"{source}: dtype {dtype!r} is not a floating point type dashtok can load")
    try:
        return TokenizerConfig(
            frontend=FrontendConfig(top_db_scope=top_db_scope),
            encoder=EncoderConfig(embed_dim=arch["embed_dim"], depth=arch["depth"], num_heads=arch["num_heads"]),
            injection=InjectionConfig(n_mels=arch["n_mels_patch"]),
            decoder=DecoderConfig(dim=arch["decoder_embed_dim"], intermediate_dim=arch["decoder_intermediate_size"],
                                  num_blocks=arch["decoder_depth"], upsample=arch["upsample_tokens"],
                                  n_fft=arch["istft_n_fft"], hop_length=arch["istft_hop"]),
            name=name)
    except ValueError as err:
        raise CheckpointError(f"{source}: architecture not buildable ({err})") from None


def official_config(config: TokenizerConfig) -> dict[str, Any]:
    """TokenizerConfig -> config.json, or a CheckpointError listing everything the release cannot express."""
    fe, enc, inj, dec = config.frontend, config.encoder, config.injection, config.decoder
    problems = []
    if replace(fe, top_db_scope="example") != FrontendConfig():
        problems.append(f"semantic front end {fe} differs from Dasheng's (the release fixes it)")
    if (enc.mlp_ratio, enc.qkv_bias, enc.patch_frames, enc.target_length) != (4.0, True, 4, 1008):
        problems.append("encoder mlp_ratio/qkv_bias/patch_frames/target_length must be 4.0/True/4/1008")
    if not inj.enabled:
        problems.append("no injection (the release always adds the acoustic injection)")
    elif inj.front_end != "acoustic":
        problems.append(f"injection front end {inj.front_end!r} (the release has only 'acoustic')")
    if (inj.n_fft, inj.f_min, inj.f_max, inj.log_floor, inj.layer_norm_eps) != (1024, 0.0, 8000.0, 1e-7, 1e-5):
        problems.append("acoustic front end n_fft/f_min/f_max/log_floor/LayerNorm eps must be 1024/0/8000/1e-7/1e-5")
    if dec.phase != "angle":
        problems.append(f"decoder.phase {dec.phase!r} (the release's head predicts a phase angle)")
    if dec.upsampler_width != "latent":
        problems.append("decoder.upsampler_width 'decoder' (the release's upsampler keeps the latent width)")
    if dec.upsample < 2:
        problems.append("decoder.upsample 1 (the release has no upsampler then, dashtok still has one)")
    if dec.kernel_size != 7:
        problems.append(f"decoder.kernel_size {dec.kernel_size} (the release's is 7)")
    if dec.max_magnitude != 100.0:
        problems.append(f"decoder.max_magnitude {dec.max_magnitude} (the release caps at 100)")
    if problems:
        raise CheckpointError(f"model {config.name!r} cannot be written in the official layout: "
                              + "; ".join(problems))
    return {"architectures": ["DashengTokenizerModel"], "auto_map": dict(_AUTO_MAP), "model_type": MODEL_TYPE,
            "dtype": "float32", "embed_dim": enc.embed_dim, "depth": enc.depth, "num_heads": enc.num_heads,
            "decoder_embed_dim": dec.dim, "decoder_depth": dec.num_blocks,
            "decoder_intermediate_size": dec.intermediate_dim, "istft_n_fft": dec.n_fft,
            "istft_hop": dec.hop_length, "upsample_tokens": dec.upsample, "n_mels_patch": inj.n_mels,
            "hop_length": fe.hop_length}


# ---- loading --------------------------------------------------------------------------------------------------------
@dataclass
class OfficialFiles:
    """An official-layout directory, read: its config mapped to dashtok's, its tensors under the official names."""

    directory: Path
    weights: Path
    config: TokenizerConfig
    state: dict[str, torch.Tensor]
    metadata: dict[str, str]

    @property
    def training(self) -> dict[str, Any]:
        stored = self.metadata.get("dashtok_training")
        return json.loads(stored) if stored else {"trained": True, "source": "official release",
                                                  "path": str(self.directory)}


def read_official(directory: str | os.PathLike[str], top_db_scope: TopDbScope = "example") -> OfficialFiles:
    """Read an official-layout directory; every problem with its files is a CheckpointError naming the file."""
    d = Path(directory)
    cfg_path, weights = d / CONFIG_FILE, d / WEIGHTS_FILE
    for p in (cfg_path, weights):
        if not p.is_file():
            raise CheckpointError(f"{d}: not an official DashengTokenizer directory ({p.name} is missing)")
    try:
        raw = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{cfg_path}: not readable JSON ({err})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{cfg_path}: expected a JSON object")
    try:
        with safe_open(str(weights), framework="pt") as f:
            meta = dict(f.metadata() or {})
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"{weights}: not a readable safetensors file ({err})") from None
    config = config_from_official(raw, cfg_path, top_db_scope)
    if "dashtok_config" in meta:  # written by dashtok: its own config is the exact one (name, caps, scope...)
        ours = TokenizerConfig.from_json(meta["dashtok_config"])
        if replace(ours, name=config.name, frontend=config.frontend) != config:
            raise CheckpointError(f"{weights}: its dashtok_config metadata disagrees with {cfg_path.name}")
        config = replace(ours, frontend=replace(ours.frontend, top_db_scope=top_db_scope))
    return OfficialFiles(directory=d, weights=weights, config=config, state=state, metadata=meta)


def to_dashtok_state(model: nn.Module, files: OfficialFiles) -> dict[str, torch.Tensor]:
    """The official tensors renamed by ``KEY_TABLE`` for ``model`` (built from ``files.config``), checked: every
    missing, unexpected or mis-shaped key and every derived buffer that differs is named in one CheckpointError.
    A stored float32 filterbank or window within ``derived_buffer_tolerance`` of dashtok's is the one used (the
    model then computes what its authors' code computes on any CPU); those dashtok keeps out of its state dict are
    written into ``model``'s buffers here."""
    return _to_dashtok_state(model, files.state, files.metadata, files.weights)


def derived_buffer_tolerance(derived: torch.Tensor, stored_dtype: torch.dtype) -> float:
    """How far a stored filterbank or window may be from the one dashtok derives from the config and still be the
    same front end: float32 rounding of the derivation on another kernel path reaches 1.4e-5 of the buffer's scale
    (measured: ATEN_CPU_CAPABILITY=default against AVX-512), a file stored in bf16 or fp16 one rounding of its
    precision; another bin count, scale, range or window type moves the buffer by more than 1e-3 of its scale."""
    eps = torch.finfo(stored_dtype).eps if stored_dtype.is_floating_point else 0.0
    return max(1e-4, 2.0 * eps) * float(derived.abs().max())


def _to_dashtok_state(model: nn.Module, state: dict[str, torch.Tensor], meta: dict[str, str],
                      source: Path) -> dict[str, torch.Tensor]:
    own = model.state_dict()
    own_buffers = dict(model.named_buffers())
    out: dict[str, torch.Tensor] = {}
    unmapped, problems = [], []
    for key, value in state.items():
        ours = to_dashtok_key(key)
        if ours is None:
            unmapped.append(key)
            continue
        dtype = value.dtype
        if value.is_floating_point() and dtype != torch.float32:  # e.g. a bf16 copy of the release: computed in fp32
            value = value.float()
        if ours == "injection.proj.weight" and value.ndim == 4:  # Conv2d (D, 1, M, P) -> Linear (D, M * P)
            if value.shape[1] != 1:
                problems.append(f"{key}: shape {tuple(value.shape)} is not a (D, 1, M, P) patch projection")
                continue
            value = value.reshape(value.shape[0], -1)
        if ours in DERIVED_BUFFERS:
            expected = own_buffers[ours] if ours in own_buffers else None
            if expected is None or expected.shape != value.shape:
                problems.append(f"{key}: shape {tuple(value.shape)}, dashtok derives "
                                f"{None if expected is None else tuple(expected.shape)} from the config")
                if ours in own:
                    out[ours] = own[ours]
                continue
            difference = float((value - expected).abs().max())
            same_front_end = difference <= derived_buffer_tolerance(expected, dtype)
            if not same_front_end:
                problems.append(f"{key}: differs from the buffer dashtok derives from the config (max abs "
                                f"difference {difference:.3g}): a different front end")
            if dtype != torch.float32 or not same_front_end:
                value = expected.detach().clone()  # dashtok's float32 values, never a bf16 copy's rounded ones
            if ours not in own:  # non-persistent in dashtok: the file's values go into the model's buffer
                with torch.no_grad():
                    own_buffers[ours].copy_(value)
                continue
        out[ours] = value
    for key in OPTIONAL_BUFFERS:  # absent from this file: take dashtok's (derived or the neutral counter)
        if key in own and key not in out:
            out[key] = own[key]
    for key in DASHTOK_ONLY:
        stored = meta.get(f"dashtok_{key}")
        out[key] = torch.tensor(json.loads(stored), dtype=torch.float32) if stored else own[key]
    missing = sorted(to_official_key(k) or k for k in own if k not in out)
    shapes = [f"{to_official_key(k)}: file {tuple(v.shape)} vs config {tuple(own[k].shape)}"
              for k, v in sorted(out.items()) if k in own and v.shape != own[k].shape]
    raise_mismatches(f"{source}: weights do not match the official layout of its config.json", missing,
                     sorted(unmapped), shapes, tuple(problems))
    return out


LOCAL_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".onnx", ".json")  # a file's name, not a hub id


def official_dir(ref: str | os.PathLike[str]) -> Path | None:
    """The official-layout directory that ``ref`` names (a directory, its model.safetensors, a hub cache folder or a
    hub id, resolved through the cache), or None when ``ref`` is not in the official layout."""
    p = Path(ref)
    if p.is_dir() and (p / "snapshots").is_dir():  # a hub cache folder, models--owner--name
        snapshot = snapshot_of_cache_folder(p)
        if snapshot is None:
            ref = p / "refs" / "main"
            said = f"refs/main naming {ref.read_text().strip()!r}, which is not there," if ref.is_file() else \
                "without refs/main and"
            raise CheckpointError(f"{p}: a hub cache folder {said} with "
                                  f"{len(list((p / 'snapshots').iterdir()))} snapshots; pass the snapshot directory")
        return snapshot
    if p.is_dir():
        return p if is_official_dir(p) else None
    if p.is_file():
        return p.parent if p.name == WEIGHTS_FILE and is_official_dir(p.parent) else None
    text = str(ref)
    local = Path(text.split("/")[0]).exists() or p.suffix in LOCAL_SUFFIXES  # "runs/missing", "x/model.safetensors"
    if HUB_ID.fullmatch(text) and not local:
        return resolve_hub(text)
    return None


# ---- writing --------------------------------------------------------------------------------------------------------
def write_official(model: nn.Module, config: TokenizerConfig, model_id: str, training: dict[str, Any],
                   directory: str | os.PathLike[str]) -> Path:
    """Write ``model`` (built from ``config``) as config.json + model.safetensors with the release's key names and
    the buffers it stores, loadable by the official remote code and the tools built on it. Returns the directory."""
    config_json = official_config(config)
    d = Path(directory)
    buffers = dict(model.named_buffers())
    tensors: dict[str, torch.Tensor] = {}
    for key, value in {**model.state_dict(), **{k: buffers[k] for k in DERIVED_BUFFERS}}.items():
        if key in DASHTOK_ONLY:
            continue
        official = to_official_key(key)
        if official is None:
            raise CheckpointError(f"{key}: no place for it in the official layout")
        if key == "injection.proj.weight":  # Linear (D, M * P) -> Conv2d (D, 1, M, P), mel-major
            value = value.reshape(value.shape[0], 1, config.injection.n_mels, config.encoder.patch_frames)
        tensors[official] = value.detach().cpu().contiguous()
    metadata = {"format": "pt",  # what transformers requires of a safetensors file
                "dashtok_config": config.to_json(), "dashtok_model_id": model_id,
                "dashtok_training": json.dumps(training, sort_keys=True),
                **{f"dashtok_{k}": json.dumps([float(v) for v in buffers[k].cpu().tolist()]) for k in DASHTOK_ONLY}}
    d.mkdir(parents=True, exist_ok=True)
    save_safetensors(tensors, d / WEIGHTS_FILE, metadata)
    tmp = d / f".{CONFIG_FILE}.partial"
    tmp.write_text(json.dumps(config_json, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, d / CONFIG_FILE)
    return d
