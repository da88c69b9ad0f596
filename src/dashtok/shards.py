"""Latent shards: a corpus's latents as WebDataset-style tar files that other tools read without dashtok.

A shard directory holds ``shard-000000.tar``, ``shard-000001.tar``, ... Each sample of a shard is two members under
one key (the sample's position in the encoding plan, ``%08d``):

- ``KEY.latents.npy``: the latents, float32 (frames, latent_dim), as ``numpy.save`` writes them;
- ``KEY.json``: ``source``, ``num_samples`` (at the model's rate), ``seconds``, ``frames``, and ``caption``,
  ``labels`` and ``id`` when a manifest gave them.

``webdataset.WebDataset(...).decode()`` yields ``{"__key__", "latents.npy", "json"}`` per sample; plain ``tarfile``
and ``numpy.load`` read them as well. Beside each shard, ``shard-000000.json`` says it is complete (written after the
tar, both atomically): its samples, the files that failed and why, and the plan it was made from. ``index.json``
(written once every shard is done) describes the set: the model that made the latents (its model id and latent id:
another model with that latent id, one with only its decoder trained further, reads them as its own), every shard and
its sample count, and the failures; ``failures.jsonl`` lists the failed inputs, one per line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dashtok.atomic import atomic_write

SHARDS_FORMAT = "dashtok-latent-shards"
SHARDS_VERSION = 1
INDEX = "index.json"
FAILURES = "failures.jsonl"
LATENT_ID = "latent_id"  # the index key of the latents' id (``Tokenizer.latent_id``); indexes before it lack it


class ShardError(ValueError):
    """A shard directory that cannot be used; the message names it."""


def shard_name(i: int) -> str:
    return f"shard-{i:06d}.tar"


def plan_digest(sources: list[str], model: dict[str, Any]) -> str:
    """What a shard is made from: its inputs in order and the model (a finished shard of another plan is redone)."""
    blob = json.dumps({"sources": sources, "model": model}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shard(directory: Path, number: int, samples: list[tuple[str, np.ndarray, dict[str, Any]]],
                failures: list[dict[str, str]], plan: str, made_by: dict[str, Any] | None = None) -> None:
    """Write shard ``number`` (samples as (key, latents (N, D), metadata)) and then its completion record (with
    ``made_by``, the model that made it, where given)."""
    path = directory / shard_name(number)
    with atomic_write(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for key, latents, meta in samples:
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(latents, dtype="<f4"))
            _add(tar, f"{key}.latents.npy", buf.getvalue())
            _add(tar, f"{key}.json", json.dumps(meta, ensure_ascii=False, sort_keys=True).encode())
    record: dict[str, Any] = {"shard": path.name, "plan": plan, "failures": failures,
              "samples": [{"key": key, "source": meta["source"], "frames": int(latents.shape[0]),
                           "seconds": meta["seconds"]} for key, latents, meta in samples]}
    if made_by is not None:
        record["model"] = made_by
    with atomic_write(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, ensure_ascii=False) + "\n")


def finished_record(directory: Path, number: int, plan: str) -> dict[str, Any] | None:
    """The completion record of shard ``number`` if it was finished for this plan (else None: it is to be made)."""
    path = directory / shard_name(number)
    try:
        record = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("plan") == plan and path.is_file() else None


def write_index(directory: Path, records: list[dict[str, Any]], header: dict[str, Any]) -> dict[str, Any]:
    """Gather the completion records of shards 0, 1, ... (``finished_record``'s, in order) into ``index.json`` and
    ``failures.jsonl``; shards numbered past them (left by an earlier, larger plan) are removed."""
    num_shards = len(records)
    shards, failures = [], []
    for record in records:
        frames = sum(s["frames"] for s in record["samples"])
        seconds = sum(s["seconds"] for s in record["samples"])
        shards.append({"name": record["shard"], "plan": record["plan"], "samples": len(record["samples"]),
                       "frames": frames, "seconds": round(seconds, 3)})
        failures += record["failures"]
    for stale in directory.glob("shard-*.*"):
        stem = stale.name.split(".")[0]
        if stem[6:].isdigit() and int(stem[6:]) >= num_shards and stale.suffix in (".tar", ".json"):
            stale.unlink()
    index = {"format": SHARDS_FORMAT, "version": SHARDS_VERSION, **header, "shards": shards,
             "samples": sum(s["samples"] for s in shards), "frames": sum(s["frames"] for s in shards),
             "hours": round(sum(s["seconds"] for s in shards) / 3600, 4), "failed": len(failures)}
    with atomic_write(directory / FAILURES) as tmp:
        tmp.write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
    with atomic_write(directory / INDEX) as tmp:
        tmp.write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n")
    return index


def read_index(directory: str | os.PathLike[str]) -> dict[str, Any]:
    d = Path(directory)
    if not d.exists():
        raise ShardError(f"{d}: no such shard directory")
    path = d / INDEX if d.is_dir() else d
    try:
        index = json.loads(path.read_text())
    except OSError:
        raise ShardError(f"{d}: no {INDEX} (not a finished shard directory: run the same dashtok encode --shards "
                         f"command again to finish it)") from None
    except ValueError as err:
        raise ShardError(f"{path}: not readable JSON ({err})") from None
    if index.get("format") != SHARDS_FORMAT:
        raise ShardError(f"{path}: not a dashtok latent shard index (format {index.get('format')!r})")
    if index.get("version") != SHARDS_VERSION:
        raise ShardError(f"{path}: shard index version {index.get('version')} is not supported (this dashtok reads "
                         f"version {SHARDS_VERSION})")
    return index


@dataclass
class SampleRef:
    """Where one sample lies in its shard: read without unpacking the tar."""

    shard: Path
    key: str
    data_offset: int  # byte offset in the tar of the latents' first value (past the .npy header)
    frames: int
    dim: int
    meta_offset: int  # the json member's data
    meta_size: int
    caption: str  # "" when none was given


def sample_refs(shard: Path) -> list[SampleRef]:
    """The samples of one shard in order, from its tar headers only (no latents are read)."""
    members: dict[str, dict[str, tarfile.TarInfo]] = {}
    try:
        with tarfile.open(shard) as tar:
            for m in tar:
                if m.isfile():
                    key, _, field = m.name.partition(".")
                    members.setdefault(key, {})[field] = m
    except (OSError, tarfile.TarError) as err:
        raise ShardError(f"{shard}: not a readable tar shard ({err})") from None
    refs = []
    with shard.open("rb") as f:
        for key, fields in members.items():
            if "latents.npy" not in fields or "json" not in fields:
                raise ShardError(f"{shard}: sample {key} lacks latents.npy or json")
            npy, meta = fields["latents.npy"], fields["json"]
            f.seek(meta.offset_data)
            try:
                caption = str(json.loads(f.read(meta.size)).get("caption", ""))
            except (ValueError, AttributeError):
                raise ShardError(f"{shard}: sample {key}: its json is not an object") from None
            f.seek(npy.offset_data)
            shape, header = _npy_header(f, shard, key)
            refs.append(SampleRef(shard, key, npy.offset_data + header, int(shape[0]), int(shape[1]), meta.offset_data,
                                  meta.size, caption))
    return refs


def _npy_header(f: io.BufferedReader, shard: Path, key: str) -> tuple[tuple[int, ...], int]:
    """Shape of the .npy at the file's position, and the offset of its data from that position."""
    start = f.tell()
    try:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except ValueError as err:
        raise ShardError(f"{shard}: sample {key}: not a .npy array ({err})") from None
    if fortran or dtype != np.dtype("<f4") or len(shape) != 2:
        raise ShardError(f"{shard}: sample {key}: latents must be C-order float32 (frames, dim), got "
                         f"{dtype} {shape}")
    return shape, f.tell() - start


def shard_paths(directory: str | os.PathLike[str], model: dict[str, Any]) -> list[Path]:
    """The shards of a finished shard directory, checked against the model that is to use them: each key of
    ``model`` (``model_id``, ``kind``, ...) as in ``index.json``, except that where both give a ``latent_id`` the
    model ids need not match (a model whose decoder alone was trained further makes the same latents)."""
    index = read_index(directory)
    checks = {k: v for k, v in model.items() if k != LATENT_ID}
    if model.get(LATENT_ID) and index.get(LATENT_ID):  # both name the latents: that decides, not the model ids
        checks = {LATENT_ID: model[LATENT_ID], **{k: v for k, v in checks.items() if k != "model_id"}}
    for key, want in checks.items():  # an index from before latent ids: its model id decides
        if index.get(key) != want:
            raise ShardError(f"{directory}: its latents are from {key} {index.get(key)!r}, not {want!r} (encode the "
                             f"corpus with this model)")
    d = Path(directory)
    d = d if d.is_dir() else d.parent
    paths = []
    for number, s in enumerate(index["shards"]):  # write_index lists shards 0, 1, ... in order
        if finished_record(d, number, s.get("plan", "")) is None:  # missing, or remade since the index was written
            raise ShardError(f"{d / s['name']}: missing or not the shard its index describes (an encode run was "
                             f"stopped part way: run it again to finish)")
        paths.append(d / s["name"])
    return paths


def read_sample(ref: SampleRef, start: int = 0, frames: int | None = None) -> np.ndarray:
    """Frames ``start : start + frames`` of a sample's latents (all of them by default): one seek and one read."""
    n = ref.frames - start if frames is None else max(0, min(frames, ref.frames - start))
    with ref.shard.open("rb") as f:
        f.seek(ref.data_offset + 4 * start * ref.dim)
        data = np.frombuffer(f.read(4 * n * ref.dim), dtype="<f4").reshape(n, ref.dim)
    return data.astype(np.float32)


def read_meta(ref: SampleRef) -> dict[str, Any]:
    """A sample's metadata (its json member)."""
    with ref.shard.open("rb") as f:
        f.seek(ref.meta_offset)
        meta: dict[str, Any] = json.loads(f.read(ref.meta_size))
    return meta
