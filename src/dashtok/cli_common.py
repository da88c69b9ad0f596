"""What every ``dashtok`` subcommand shares, the core's and the feature packages' alike: loading the model, the
common options, and many files in, one output each (mapping inputs to outputs, refusing to overwrite, progress,
reporting a bad file by name without stopping the others). Errors the user must fix are one line and exit code 2."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from dashtok.audio_io import AudioError, find_audio_files
from dashtok.checkpoint import CheckpointError, default_checkpoint_path
from dashtok.latents_io import LatentFileError
from dashtok.precision import PRECISIONS, set_precision
from dashtok.tokenizer import Tokenizer

FILE_ERRORS = (AudioError, LatentFileError, ValueError, RuntimeError, MemoryError, OSError)


class CliError(Exception):
    """A fatal, user-facing error: printed as one line, exit code 2."""


def fail(msg: str, code: int = 2) -> NoReturn:
    print(f"dashtok: error: {msg}", file=sys.stderr)
    raise SystemExit(code)


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal (logs stay clean)."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.done = total, label, 0
        self.enabled = enabled and sys.stderr.isatty() and total > 1
        self.start = time.perf_counter()

    def step(self, name: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / self.total)
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        bar = "#" * filled + "-" * (width - filled)
        print(f"\r{self.label} [{bar}] {self.done}/{self.total} {rate:.1f} files/s {name[-40:]:<40}",
              end="" if self.done < self.total else "\n", file=sys.stderr, flush=True)


@dataclass
class Job:
    source: Path
    target: Path


def jobs_for(inputs: list[str], output: str | None, suffix: str, single_ext: tuple[str, ...],
          find: bool = True) -> list[Job]:
    """Map inputs (files or directory trees) to outputs; a directory input keeps its tree under ``output``."""
    pairs: list[tuple[Path, Path]] = []  # (file, path relative to the output root)
    for raw in inputs:
        root = Path(raw)
        if not root.exists():
            raise CliError(f"{root}: no such file or directory")
        if root.is_dir():
            files = find_audio_files(root) if find else sorted(root.rglob("*.safetensors"))
            if not files:
                raise CliError(f"{root}: no input files found in this directory")
            pairs += [(f, f.relative_to(root)) for f in files]
        else:
            pairs.append((root, Path(root.name)))
    if output is None:
        jobs = [Job(f, f.with_suffix(suffix)) for f, _ in pairs]
    elif len(pairs) == 1 and Path(inputs[0]).is_file() and output.lower().endswith(single_ext):
        jobs = [Job(pairs[0][0], Path(output))]
    else:
        jobs = [Job(f, Path(output) / rel.with_suffix(suffix)) for f, rel in pairs]
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.target in seen:
            raise CliError(f"{seen[job.target]} and {job.source} would both be written to {job.target}")
        seen[job.target] = job.source
    return jobs


def refuse_overwrite(paths: list[Path], force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CliError(f"{existing[0]}{more} already exists; pass --force to overwrite")


def run_jobs(jobs: list[Job], label: str, work: Callable[[Job], None], quiet: bool) -> int:
    progress = Progress(len(jobs), label, enabled=not quiet)
    failed = 0
    for job in jobs:
        try:
            work(job)
        except FILE_ERRORS as err:
            failed += 1
            msg = str(err)
            if not msg.startswith(str(job.source)):
                msg = f"{job.source}: {msg}"
            print(f"dashtok: error: {msg}", file=sys.stderr)
        progress.step(str(job.source))
    if failed:
        print(f"dashtok: {failed} of {len(jobs)} file(s) failed; the others were written", file=sys.stderr)
        return 1
    return 0


def load_model(checkpoint: str | None, device: str, precision: str = "fp32") -> Tokenizer:
    """The bundled default, a dashtok checkpoint, an official-layout directory or a hub id (see from_pretrained)."""
    try:
        if not checkpoint and not default_checkpoint_path().is_file():
            raise CheckpointError(f"{default_checkpoint_path()}: the bundled default model is missing from this "
                                  f"installation")
        return set_precision(Tokenizer.from_pretrained(checkpoint or None, device=device), precision)
    except (CheckpointError, ValueError) as err:
        raise CliError(str(err)) from None


def model_options(p: argparse.ArgumentParser) -> None:
    """The options every command that runs a model shares."""
    p.add_argument("--checkpoint", "-c", help="dashtok checkpoint file or directory, official DashengTokenizer "
                                              "directory or hub id (default: the bundled model)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="inference precision: bf16 (CPU with AVX-512 BF16, GPU), fp16 (GPU), int8 (CPU); "
                        "front end and iSTFT stay float32 (default: fp32)")
    p.add_argument("--force", "-f", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
