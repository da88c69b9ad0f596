"""Encoding a corpus into latent shards (``dashtok encode --shards DIR``), on one process or many.

The inputs (audio files, directory trees and manifests, in the order given) form a plan: input i is sample i, and
shard s holds samples ``s * shard_size ...``. The plan does not depend on how many processes run it: under
``torchrun`` (``RANK``/``WORLD_SIZE`` from the environment) process r makes the shards s with s % world == r, so a
shard's latents are the same whichever process makes it. Reading and resampling run in DataLoader worker processes
ahead of the model; within a shard, files of similar length are encoded as one padded batch. A finished shard is
kept on a re-run of the same command (its completion record names the plan and the model), an unfinished one, or
one with a failed input, is made again;
``index.json`` is written once every shard is there (``dashtok.shards``).
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from dashtok.audio_io import AudioError, find_audio_files, load_audio
from dashtok.encode_files import check_long_enough, encode_batch, length_buckets
from dashtok.shards import (
    FAILURES,
    INDEX,
    LATENT_ID,
    finished_record,
    plan_digest,
    read_index,
    shard_name,
    write_index,
    write_shard,
)
from dashtok.tokenizer import Tokenizer

MANIFEST_SUFFIXES = (".jsonl", ".csv")
MADE_BY = ("model_id", "config_hash", "kind")  # what a shard directory holds, kept in its index and shard records


class InputError(ValueError):
    """An input list that cannot be used (a missing path, a bad manifest row); the message names it."""


@dataclass(frozen=True)
class CorpusItem:
    path: Path
    caption: str = ""
    labels: dict[str, Any] = field(default_factory=dict)
    id: str = ""


def read_audio_manifest(path: Path) -> list[CorpusItem]:
    """A manifest's rows: JSONL objects or CSV rows with a ``path`` (relative to the manifest's folder or absolute)
    and optionally ``caption``, ``labels`` (an object; a JSON string in CSV) and ``id``. Corpus manifests written
    by ``dashtok data build`` are such files."""
    items = []
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f)) if path.suffix.lower() == ".csv" else \
                [(json.loads(line) if line.strip() else None) for line in f]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as err:
        raise InputError(f"{path}: not a readable manifest ({err})") from None
    for lineno, row in enumerate(rows, 2 if path.suffix.lower() == ".csv" else 1):
        if row is None:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not row["path"]:
            raise InputError(f"{path}:{lineno}: a manifest row needs a 'path' (a string)")
        labels = row.get("labels") or {}
        try:
            labels = json.loads(labels) if isinstance(labels, str) else labels
        except json.JSONDecodeError:
            raise InputError(f"{path}:{lineno}: 'labels' is not a JSON object") from None
        if not isinstance(labels, dict):
            raise InputError(f"{path}:{lineno}: 'labels' is not a JSON object")
        p = Path(row["path"])
        items.append(CorpusItem(p if p.is_absolute() else path.parent / p, str(row.get("caption") or ""), labels,
                                str(row.get("id") or "")))
    if not items:
        raise InputError(f"{path}: the manifest lists no files")
    return items


def corpus_items(inputs: list[str]) -> list[CorpusItem]:
    """The plan's inputs in order: a file, every audio file of a directory tree (sorted), or a manifest's rows."""
    items: list[CorpusItem] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"{p}: no such file or directory")
        if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            items += read_audio_manifest(p)
        elif p.is_dir():
            found = find_audio_files(p)
            if not found:
                raise InputError(f"{p}: no audio files found in this directory")
            items += [CorpusItem(f) for f in found]
        else:
            items.append(CorpusItem(p))
    return items


def rank_and_world() -> tuple[int, int]:
    """This process's place under torchrun (or any launcher that sets RANK and WORLD_SIZE); (0, 1) alone."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InputError("RANK and WORLD_SIZE must be integers") from None
    if not 0 <= rank < world:
        raise InputError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return rank, world


def check_rendezvous(world: int) -> None:
    """Several processes meet at the end (the index waits for every shard): that needs torchrun's rendezvous."""
    if world > 1 and not (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT")):
        raise InputError(f"WORLD_SIZE {world} without MASTER_ADDR and MASTER_PORT: start the processes with torchrun "
                         f"(torchrun --nproc-per-node N -m dashtok encode ...)")


class _Reader(Dataset):
    """(plan index, mono audio at the model's rate, or the error that names the file), in a worker process."""

    def __init__(self, items: list[tuple[int, CorpusItem]], sample_rate: int, max_seconds: float | None) -> None:
        self.items, self.sample_rate, self.max_seconds = items, sample_rate, max_seconds

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | Exception]:
        index, item = self.items[i]
        try:
            return index, load_audio(item.path, self.sample_rate, self.max_seconds)
        except (AudioError, OSError, MemoryError) as err:
            return index, err


def _as_is(x: Any) -> Any:  # noqa: ANN401  (the DataLoader's collate: items as the reader made them)
    return x


@dataclass
class ShardJob:
    number: int
    items: list[tuple[int, CorpusItem]]
    plan: str


@dataclass
class CorpusEncoder:
    """Makes this process's shards of a plan; ``run`` returns (shards made, samples, failures)."""

    model: Tokenizer
    items: list[CorpusItem]
    directory: Path
    shard_size: int = 128
    batch_size: int = 8
    max_batch_seconds: float = 600.0
    max_seconds: float | None = None
    workers: int = 2
    semantic: bool = False
    quiet: bool = False

    @property
    def num_shards(self) -> int:
        return (len(self.items) + self.shard_size - 1) // self.shard_size

    @property
    def model_record(self) -> dict[str, Any]:
        m = self.model
        return {"model_id": m.model_id, "config_hash": m.config.hash, "latent_dim": m.latent_dim,
                "kind": "semantic" if self.semantic else "latents", "sample_rate": m.sample_rate,
                "frame_rate": m.frame_rate, LATENT_ID: m.latent_id}

    def shard_job(self, number: int) -> ShardJob:
        """Shard ``number``'s inputs and its plan digest: what it is made from (resolved paths, captions, labels,
        ids, the length limit) and by which model; a finished shard of another digest is made again."""
        start = number * self.shard_size
        items = [(i, self.items[i]) for i in range(start, min(start + self.shard_size, len(self.items)))]
        made_from = [json.dumps([str(it.path.resolve()), it.caption, it.labels, it.id], sort_keys=True, default=str)
                     for _, it in items]
        # The latent id is left out of the digest: the model id and config hash already fix it, and a directory
        # encoded before indexes recorded it keeps its finished shards.
        made_by = {k: v for k, v in self.model_record.items() if k != LATENT_ID}
        return ShardJob(number, items, plan_digest(made_from, {**made_by, "max_seconds": self.max_seconds}))

    def todo(self, rank: int, world: int, force: bool) -> list[ShardJob]:
        """This process's shards still to make: unfinished ones, and finished ones with failed inputs (a file
        fixed since is encoded; one still broken fails again, the shard's other inputs are made again with it)."""
        jobs = [self.shard_job(s) for s in range(rank, self.num_shards, world)]
        if force:
            return jobs
        records = [finished_record(self.directory, j.number, j.plan) for j in jobs]
        return [j for j, record in zip(jobs, records, strict=True) if record is None or record.get("failures")]

    def run(self, jobs: list[ShardJob], report_error: Any) -> tuple[int, int, int]:  # noqa: ANN401
        flat = [pair for job in jobs for pair in job.items]
        loader = DataLoader(_Reader(flat, self.model.sample_rate, self.max_seconds), batch_size=None,
                            num_workers=self.workers, collate_fn=_as_is,
                            prefetch_factor=4 if self.workers else None)
        loaded = iter(loader)
        samples = failures = 0
        for job in jobs:
            t0 = time.perf_counter()
            got = [next(loaded) for _ in job.items]
            made, failed = self.make_shard(job, got, report_error, samples + failures)
            samples += made
            failures += failed
            if not self.quiet:
                seconds = sum(len(a) for _, a in got if isinstance(a, np.ndarray)) / self.model.sample_rate
                took = time.perf_counter() - t0
                print(f"{self.directory / shard_name(job.number)}: {made} samples, {failed} failed, "
                      f"{seconds / 60:.1f} min of audio in {took:.1f} s ({seconds / max(took, 1e-9):.0f}x real time)",
                      flush=True)
        return len(jobs), samples, failures

    def make_shard(self, job: ShardJob, got: list[tuple[int, np.ndarray | Exception]], report_error: Any,
                   done: int) -> tuple[int, int]:  # noqa: ANN401
        items = dict(job.items)
        failures: list[dict[str, str]] = []

        def failed(index: int, err: BaseException) -> None:
            report_error(items[index].path, err, done)  # raises on an environment fault: the run stops
            failures.append({"source": str(items[index].path), "error": str(err)})

        audio: dict[int, np.ndarray] = {}
        for index, x in got:
            try:
                if isinstance(x, Exception):
                    raise x
                check_long_enough(self.model, items[index].path, len(x))
                audio[index] = x
            except (AudioError, OSError, MemoryError) as err:
                failed(index, err)
        order = sorted(audio)
        samples: list[tuple[str, np.ndarray, dict[str, Any]]] = []
        for bucket in length_buckets([len(audio[i]) / self.model.sample_rate for i in order], self.batch_size,
                                     self.max_batch_seconds):
            group = [order[b] for b in bucket]
            encoded = encode_batch(self.model, [(items[i].path, audio[i]) for i in group], self.semantic)
            for i, lf in zip(group, encoded, strict=True):
                if isinstance(lf, Exception):
                    failed(i, lf)
                    continue
                item = items[i]
                meta: dict[str, Any] = {"source": str(item.path), "num_samples": len(audio[i]),
                                        "seconds": round(len(audio[i]) / self.model.sample_rate, 4),
                                        "frames": int(lf.latents.shape[0])}
                meta.update({k: v for k, v in (("caption", item.caption), ("labels", item.labels), ("id", item.id))
                             if v})
                samples.append((f"{i:08d}", lf.latents.numpy(), meta))
        samples.sort(key=lambda s: s[0])
        failures.sort(key=lambda f: f["source"])
        made_by = {k: self.model_record[k] for k in MADE_BY}
        write_shard(self.directory, job.number, samples, failures, job.plan, made_by)
        return len(samples), len(failures)

    def finish(self, inputs: list[str]) -> dict[str, Any] | None:
        """The index, if every shard of the plan is finished (else None: other processes or a re-run will)."""
        records = []
        for s in range(self.num_shards):
            record = finished_record(self.directory, s, self.shard_job(s).plan)
            if record is None:
                return None
            records.append(record)
        header = {**self.model_record, "shard_size": self.shard_size, "inputs": inputs}
        return write_index(self.directory, records, header)

    def start(self) -> None:
        """Before any shard is (re)made: the index of an earlier run no longer describes the directory."""
        for name in (INDEX, FAILURES):
            (self.directory / name).unlink(missing_ok=True)


def check_directory(directory: Path, model_record: dict[str, Any], force: bool) -> None:
    """Refuse to mix the shards of another model (or kind) into a directory, unless ``force``: as its index says,
    or, where a run stopped before writing one, as its shards' completion records say."""
    if force:
        return
    ours = {k: model_record[k] for k in MADE_BY}
    theirs = None
    try:
        index = read_index(directory) if (directory / INDEX).is_file() else None
    except ValueError:
        index = None  # a damaged index is rewritten at the end
    if index is not None:
        theirs = {k: index.get(k) for k in MADE_BY}
    else:
        for record in sorted(directory.glob("shard-*.json")):
            try:
                made_by = json.loads(record.read_text()).get("model")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(made_by, dict):
                theirs = {k: made_by.get(k) for k in MADE_BY}
                break
    if theirs is not None and theirs != ours:
        raise InputError(f"{directory}: holds shards of {theirs['kind']} from model {theirs['model_id']!r}, not "
                         f"{ours['kind']} from {ours['model_id']!r}; pass --force to replace them")


def barrier(world: int) -> None:
    """Under torchrun: wait for every process (gloo, with time for the slowest) before the index is written."""
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=datetime.timedelta(hours=48))
        dist.barrier()
        dist.destroy_process_group()


def summary_line(index: dict[str, Any] | None, directory: Path, made: int, rank: int) -> str:
    if index is None:
        return f"dashtok: rank {rank}: {made} shard(s) made; the index is written when every shard is finished"
    return (f"{directory / INDEX}: {index['samples']} samples ({index['hours']:.2f} h) in "
            f"{len(index['shards'])} shards, {index['failed']} failed" + (f" (listed in {directory / FAILURES})"
                                                                          if index["failed"] else ""))
