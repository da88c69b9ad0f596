"""Many files in, one output each: how the CLI maps inputs to outputs, refuses to overwrite, shows progress, and
reports a bad file by name without stopping the others. Errors the user must fix are one line and exit code 2."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from dashtok.audio_io import AudioError, find_audio_files
from dashtok.latents_io import LatentFileError

FILE_ERRORS = (AudioError, LatentFileError, ValueError, RuntimeError, MemoryError)


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
