"""Long recordings in bounded memory: a decoded recording kept on disk and read back piece by piece, for the
tokenizer's streaming encode (``Tokenizer.encode_stream``, equal to encoding the whole recording).

    with SampleFile.from_audio_file("3h.flac", 16000) as reader:    # decoded and resampled once, block by block
        for latents in tokenizer.encode_stream(reader.read, reader.num_samples):   # (n, D) per group of chunks
            ...
"""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO

import numpy as np
import torch

from dashtok.audio_io import iter_audio_blocks


class SampleFile:
    """A mono float32 recording at one sample rate in an anonymous temporary file (unlinked as it is created, so
    it cannot outlive the process, even a killed one), read back piece by piece with explicit reads (not a memory
    map, so the resident memory stays one piece). ``directory``: where it lives while open (default: $TMPDIR; the
    CLI puts it beside the output, since /tmp may be a RAM disk)."""

    def __init__(self, handle: BinaryIO, num_samples: int) -> None:
        self._handle = handle
        self.num_samples = num_samples

    @classmethod
    def from_audio_file(cls, source: str | os.PathLike[str], sample_rate: int, max_seconds: float | None = None,
                        directory: str | os.PathLike[str] | None = None) -> SampleFile:
        """Decode (mono, resampled, checked as ``load_audio`` does) ``source`` into the file, block by block."""
        handle = tempfile.TemporaryFile(prefix="dashtok-", suffix=".f32", dir=directory)
        n = 0
        try:
            for block in iter_audio_blocks(source, sample_rate, max_seconds):
                handle.write(np.ascontiguousarray(block, dtype=np.float32).tobytes())
                n += len(block)
            handle.flush()
        except BaseException:
            handle.close()
            raise
        return cls(handle, n)

    def read(self, a: int, b: int) -> torch.Tensor:
        """Samples [a, b), (b - a,) float32."""
        data = os.pread(self._handle.fileno(), 4 * (b - a), 4 * a)
        return torch.from_numpy(np.frombuffer(data, dtype=np.float32).copy())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> SampleFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
