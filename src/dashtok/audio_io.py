"""Reading and writing audio: soundfile for I/O, soxr for resampling, mono at the model's rate.

Files are read in blocks, mixed to mono and resampled as a stream, so a long multi-channel high-rate file never
sits in memory at full size. Every problem is raised as :class:`AudioError` naming the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from dashtok.atomic import atomic_write

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".snd", ".caf",
                    ".w64", ".rf64", ".opus")
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000


class AudioError(ValueError):
    """An input file that cannot be used; the message starts with the file name."""


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad (decoded) audio to ``n`` samples, the length of the input it came from."""
    return audio[:n] if len(audio) >= n else np.pad(audio, (0, n - len(audio)))


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Mono float32 (T,) from ``sr_in`` to ``sr_out`` (soxr, very high quality)."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    return soxr.resample(np.asarray(x, dtype=np.float32), sr_in, sr_out, quality="VHQ").astype(np.float32)


def load_audio(path: str | os.PathLike[str], sample_rate: int = 16000, max_seconds: float | None = None,
               block_frames: int = 1 << 20) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sample_rate``: (T,). Channels are averaged; any rate is resampled.

    Raises :class:`AudioError` for a missing, unreadable, corrupt, truncated, empty or non-finite file, or one
    longer than ``max_seconds``.
    """
    audio = np.concatenate(list(iter_audio_blocks(path, sample_rate, max_seconds, block_frames)))
    if audio.size == 0:
        raise AudioError(f"{Path(path)}: empty audio after resampling")
    return audio.astype(np.float32, copy=False)


def iter_audio_blocks(path: str | os.PathLike[str], sample_rate: int = 16000, max_seconds: float | None = None,
                      block_frames: int = 1 << 20) -> Iterator[np.ndarray]:
    """``path`` as successive mono float32 blocks at ``sample_rate`` (what ``load_audio`` concatenates), with the
    same checks, raised as soon as they can be: memory stays one block whatever the file's length."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: empty file (0 bytes)")
    try:
        f = sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{p}: not a readable audio file ({err})") from None
    with f:
        sr, frames = int(f.samplerate), int(f.frames)
        if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
            raise AudioError(f"{p}: sample rate {sr} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]")
        if frames <= 0:
            raise AudioError(f"{p}: empty audio (0 samples)")
        if max_seconds is not None and frames / sr > max_seconds:
            raise AudioError(f"{p}: {frames} samples at {sr} Hz ({frames / sr:.2f} s), over the limit of "
                             f"{max_seconds:g} s (raise --max-seconds to allow it)")
        stream = None if sr == sample_rate else soxr.ResampleStream(sr, sample_rate, 1, dtype="float32",
                                                                    quality="VHQ")
        read = 0
        try:
            for block in f.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                mono = block.mean(axis=1, dtype=np.float32)
                bad = np.flatnonzero(~np.isfinite(mono))
                if bad.size:
                    raise AudioError(f"{p}: contains NaN or Inf samples (the first at {(read + bad[0]) / sr:.3f} s)")
                read += block.shape[0]
                yield mono if stream is None else stream.resample_chunk(mono, last=False)
        except sf.LibsndfileError as err:
            raise AudioError(f"{p}: corrupt audio data ({err})") from None
        if read < frames:
            raise AudioError(f"{p}: truncated (header says {frames} samples, only {read} could be read)")
        _check_not_truncated(p, f.extra_info)
        if stream is not None:
            yield stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


_CHUNK_SIZE = re.compile(r"^(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # placeholders written by recorders that never finalised a header


def _check_not_truncated(path: Path, extra_info: str) -> None:
    """libsndfile silently shortens a cut WAV/AIFF to what is there; its header report tells us it was cut."""
    for chunk, declared, actual in _CHUNK_SIZE.findall(extra_info):
        if int(declared) > int(actual) and int(declared) not in _STREAMING_SIZES:
            raise AudioError(f"{path}: truncated ({chunk} chunk declares {declared} bytes, the file holds {actual})")


def write_audio(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int) -> int:
    """Write mono audio (T,) as 16-bit PCM (WAV/FLAC by extension); returns how many samples were clipped."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    clipped = int((np.abs(x) > 1.0).sum())
    fmt = _format_for(p)
    with atomic_write(p) as tmp:
        sf.write(str(tmp), np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16", format=fmt)
    return clipped


class AudioWriter:
    """Writes mono blocks to an open 16-bit file, keeping at most ``num_samples`` samples (trim or zero-pad)."""

    def __init__(self, handle: sf.SoundFile, num_samples: int) -> None:
        self._handle = handle
        self.num_samples = num_samples
        self.written = 0
        self.clipped = 0
        self.peak = 0.0

    def write(self, block: np.ndarray) -> None:
        x = np.asarray(block, dtype=np.float32).reshape(-1)[: self.num_samples - self.written]
        self.clipped += int((np.abs(x) > 1.0).sum())
        self.peak = max(self.peak, float(np.abs(x).max()) if x.size else 0.0)
        self._handle.write(np.clip(x, -1.0, 1.0))
        self.written += len(x)


@contextmanager
def audio_writer(path: str | os.PathLike[str], sample_rate: int, num_samples: int) -> Iterator[AudioWriter]:
    """Write a long output block by block (bounded memory), atomically; zero-padded to ``num_samples`` at the end."""
    p = Path(path)
    with atomic_write(p) as tmp:
        with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=1, subtype="PCM_16",
                          format=_format_for(p)) as handle:
            writer = AudioWriter(handle, num_samples)
            yield writer
            writer.write(np.zeros(num_samples - writer.written, dtype=np.float32))


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    fmt = {"wav": "WAV", "flac": "FLAC", "aiff": "AIFF", "aif": "AIFF", "au": "AU", "w64": "W64"}.get(ext)
    if fmt is None:
        raise AudioError(f"{path}: cannot write audio with extension '.{ext}' (use .wav or .flac)")
    return fmt


def find_audio_files(root: str | os.PathLike[str]) -> list[Path]:
    """All audio files under ``root`` (recursively), sorted; ``root`` itself if it is a file."""
    r = Path(root)
    if r.is_file():
        return [r]
    return sorted(q for q in r.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_EXTENSIONS)
