"""What every ``dashtok`` subcommand shares, the core's and the feature packages' alike: loading the model, the
common options, and many files in, one output each (mapping inputs to outputs, refusing to overwrite, progress,
reporting a bad file by name without stopping the others). Errors the user must fix are one line and exit code 2."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from dashtok.audio_io import AUDIO_EXTENSIONS, find_audio_files, write_audio
from dashtok.checkpoint import CheckpointError, default_checkpoint_path
from dashtok.codec import Codec
from dashtok.encode_corpus import MANIFEST_SUFFIXES, InputError, read_audio_manifest
from dashtok.encode_files import FILE_ERRORS
from dashtok.precision import PRECISIONS, set_precision
from dashtok.tokenizer import Tokenizer


class CliError(Exception):
    """A fatal, user-facing error: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line too (``dashtok encode: error: argument --batch-size: ...; see
    dashtok encode --help``) like every other error; subparsers are of this class as well."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` parse as floats but mean nothing as an option)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def check_device(device: str) -> torch.device:
    """``--device`` as a torch device this installation can use; otherwise a CliError saying why (before any work)."""
    try:
        d = torch.device(device)
    except (RuntimeError, ValueError):
        raise CliError(f"--device {device}: not a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        why = "this PyTorch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise CliError(f"--device {device}: {why} (torch {torch.__version__}); use --device cpu")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise CliError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    if d.type == "mps" and not torch.backends.mps.is_available():
        raise CliError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    if d.type not in ("cpu", "cuda", "mps"):
        raise CliError(f"--device {device}: dashtok runs on cpu, cuda or mps")
    return d


def check_audio_output(output: str | None, writable: tuple[str, ...]) -> None:
    """Refuse an output named like an audio file the command does not write (``-o x.mp3`` would otherwise become a
    directory called x.mp3, or fail after all the work)."""
    if output is None:
        return
    suffix = Path(output).suffix.lower()
    if suffix in AUDIO_EXTENSIONS and suffix not in writable:
        kinds = " or ".join(writable) if writable else "a directory"
        # converting afterwards helps only where the command writes audio and another audio format was asked for
        hint = " (convert afterwards, e.g. with ffmpeg)" if set(writable) & set(AUDIO_EXTENSIONS) else ""
        raise CliError(f"{output}: this command writes {kinds}, not {suffix}{hint}")


def report_clipping(target: Path, clipped: int, peak: float) -> None:
    """One warning line for an output whose samples went past full scale and were clipped in the file."""
    if clipped:
        print(f"dashtok: warning: {target}: {clipped} sample(s) above full scale (peak {peak:.2f}) were clipped; "
              f"--rescale scales the output to fit instead", file=sys.stderr)


def write_output(target: Path, audio: np.ndarray, sample_rate: int, rescale: bool, limit: float = 0.99) -> None:
    """Write decoded audio; past full scale it is clipped with a warning, or with ``rescale`` scaled down to a peak
    of ``limit`` (as encodec's --rescale; quieter audio as it is)."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if rescale and peak > limit:
        audio = audio * (limit / peak)
    report_clipping(target, write_audio(target, audio, sample_rate), peak)


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
        elif find and root.suffix.lower() in MANIFEST_SUFFIXES:  # a manifest's files keep their tree under output
            try:
                listed = [item.path for item in read_audio_manifest(root)]
            except InputError as err:
                raise CliError(str(err)) from None
            base = root.parent.resolve()  # resolved: a row "../x.wav" must not lead the output out of its folder
            pairs += [(f, f.resolve().relative_to(base) if f.resolve().is_relative_to(base) else Path(f.name))
                      for f in listed]
        else:
            pairs.append((root, Path(root.name)))
    check_audio_output(output, single_ext)
    names_file = output is not None and output.lower().endswith(single_ext)
    one_file = len(pairs) == 1 and len(inputs) == 1 and pairs[0][0] == Path(inputs[0])
    if names_file and not one_file:  # else a folder called x.wav would silently hold the outputs
        given = f"{len(inputs)} inputs were given" if len(inputs) > 1 else \
            f"{inputs[0]} is a directory or manifest (its outputs keep its tree)"
        raise CliError(f"{output} names one {Path(str(output)).suffix} file, but {given}; name a directory for "
                       f"the outputs")
    if output is None:
        jobs = [Job(f, f.with_suffix(suffix)) for f, _ in pairs]
    elif names_file:
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
        what = existing[0] + (f" and {len(existing) - 1} more output(s)" if len(existing) > 1 else "")
        raise CliError(f"{what} already exist{'s' if len(existing) == 1 else ''}; pass --force to overwrite")


def environment_fault(err: BaseException) -> str | None:
    """What stops a whole run rather than one file: the machine, not the input (a full or read-only disk, memory,
    a failing device); None for a problem of the file itself."""
    if isinstance(err, MemoryError) or "out of memory" in str(err).lower():
        return "out of memory"
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if isinstance(err, OSError) and err.errno == errno.EROFS:
        return "the output is on a read-only file system"
    if isinstance(err, RuntimeError) and ("CUDA error" in str(err) or "device-side assert" in str(err)):
        return "the device failed"
    return None


def stop_for(source: Path, err: BaseException, fault: str, done: int, resumable: bool = True) -> CliError:
    """The one line that stops a multi-file run on an environment fault, keeping what was written."""
    what = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    then = "run the same command with --skip-existing to go on" if resumable else "run the command again"
    return CliError(f"{source}: {fault} ({what}); stopped after {done} finished file(s), which are kept: free the "
                    f"resource, then {then}")


def skip_finished(jobs: list[Job], skip: bool) -> list[Job]:
    """With ``--skip-existing``, the jobs whose output is not there yet (outputs are written atomically: one that
    exists is complete); a line says how many were skipped."""
    if not skip:
        return jobs
    todo = [j for j in jobs if not j.target.exists()]
    if len(todo) < len(jobs):
        print(f"dashtok: skipping {len(jobs) - len(todo)} file(s) whose output exists", file=sys.stderr)
    return todo


def report_file_error(source: Path, err: BaseException, done: int, resumable: bool = True) -> None:
    """A file of a multi-file run failed: an environment fault stops the run (``stop_for``, ``done`` files finished);
    anything else is the file's own problem, one line naming it (once), and the run goes on."""
    fault = environment_fault(err)
    if fault:
        raise stop_for(source, err, fault, done, resumable) from None
    msg = str(err)
    print(f"dashtok: error: {msg if msg.startswith(str(source)) else f'{source}: {msg}'}", file=sys.stderr)


def run_jobs(jobs: list[Job], label: str, work: Callable[[Job], None], quiet: bool, resumable: bool = True) -> int:
    progress = Progress(len(jobs), label, enabled=not quiet)
    failed = 0
    for job in jobs:
        try:
            work(job)
        except FILE_ERRORS as err:
            report_file_error(job.source, err, progress.done - failed, resumable)
            failed += 1
        progress.step(str(job.source))
    return summarise_failures(failed, len(jobs))


def summarise_failures(failed: int, total: int) -> int:
    """The closing line of a multi-file run with failures, and its exit code (1 when any file failed)."""
    if not failed:
        return 0
    if total == 1:
        print("dashtok: the file failed; nothing was written for it", file=sys.stderr)
    elif failed == total:
        print(f"dashtok: all {total} files failed", file=sys.stderr)
    else:
        rest = "the other file was" if total - failed == 1 else f"the other {total - failed} were"
        print(f"dashtok: {failed} of {total} files failed; {rest} written", file=sys.stderr)
    return 1


def load_model(checkpoint: str | None, device: str, precision: str = "fp32") -> Tokenizer:
    """The bundled default, a dashtok checkpoint, an official-layout directory or a hub id (see from_pretrained)."""
    check_device(device)
    try:
        if not checkpoint and not default_checkpoint_path().is_file():
            raise CheckpointError(f"{default_checkpoint_path()}: the bundled default model is missing from this "
                                  f"installation")
        return set_precision(Tokenizer.from_pretrained(checkpoint or None, device=device), precision)
    except (CheckpointError, ValueError) as err:
        raise CliError(str(err)) from None


def load_codec(checkpoint: str | None, device: str, precision: str = "fp32") -> Codec:
    """A tokenizer (as ``load_model``) or a VAE-baseline checkpoint, by its format: what generators decode with."""
    from dashtok.baselines.vae import load_codec as load_any_codec

    check_device(device)
    try:
        codec = load_any_codec(checkpoint, device)
    except (CheckpointError, ValueError) as err:
        raise CliError(str(err)) from None
    if not isinstance(codec, Tokenizer):
        if precision != "fp32":
            raise CliError("--precision applies to tokenizers, not to the VAE baseline")
        return codec
    try:
        return set_precision(codec, precision)
    except ValueError as err:
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
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar and no summary lines")
