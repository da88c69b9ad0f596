"""Long recordings in bounded memory: encode chunk by chunk, equal to encoding the whole recording.

The encoder's ~10 s chunks (1008 mel frames) are independent of each other but for two things, both handled here:
the STFT frames near a chunk's edges read samples of the neighbouring chunks (up to n_fft / 2 samples, 512 for the
acoustic front end), so each group of chunks reads its samples plus that margin (``Spectrogram.frames_of``); and
the semantic front end's dB floor is the recording's peak minus 120 dB, which a first pass over the recording
finds. Peak memory is then one group of chunks, whatever the duration.

    reader = SampleFile.from_audio_file("3h.flac", 16000)       # decoded and resampled once, block by block
    for latents in encode_long(tokenizer, reader.read, reader.num_samples):   # (n, D) per group of chunks
        ...
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np
import torch

from dashtok.audio_io import iter_audio_blocks
from dashtok.precision import autocast_for
from dashtok.tokenizer import Features, Tokenizer

Reader = Callable[[int, int], torch.Tensor]  # samples [a, b) of a mono recording at the model's rate, (b - a,)


def batch_reader(model: Tokenizer, read: Reader) -> Reader:
    """``read`` as the front ends want it: (1, b - a) on the model's device."""
    return lambda a, b: read(a, b)[None].to(model.device)


def semantic_peak_db(model: Tokenizer, read: Reader, num_samples: int, block_frames: int | None = None
                     ) -> torch.Tensor:
    """The dB maximum of the recording's semantic mel (what the whole-recording floor is taken from), (1,).
    Computed in blocks of ``block_frames`` mel frames (default: one encoder chunk)."""
    block_frames = block_frames or model.config.encoder.target_length
    mel_spec, to_db = model.encoder.mel_spectrogram, model.encoder.to_db
    total = mel_spec.spectrogram.num_frames(num_samples)
    peak = torch.tensor([-float("inf")], device=model.device)
    device_read = batch_reader(model, read)
    for f0 in range(0, total, block_frames):
        mel = mel_spec.frames_of(device_read, num_samples, f0, min(total, f0 + block_frames))
        peak = torch.maximum(peak, to_db.db(mel).amax().reshape(1))
    return peak


@torch.no_grad()
def encode_long(model: Tokenizer, read: Reader, num_samples: int, semantic: bool = False,
                chunks_per_step: int | None = None) -> Iterator[torch.Tensor]:
    """Latents (or the semantic features alone) of one long recording, (n, D) per group of ``chunks_per_step``
    encoder chunks (default: the encoder's ``max_chunks``); concatenated they equal ``model.encode`` of the whole
    recording (to float rounding: chunk groups batch differently). Reads only what each group needs."""
    if num_samples < model.min_num_samples:
        raise ValueError(f"{num_samples} samples is shorter than one latent frame ({model.min_num_samples})")
    hop, chunk = model.config.frontend.hop_length, model.config.encoder.target_length
    patch = model.config.encoder.patch_frames
    enc = model.encoder
    peak = semantic_peak_db(model, read, num_samples)
    device_read = batch_reader(model, read)
    total = 1 + num_samples // hop  # mel frames
    step = chunk * (chunks_per_step or enc.max_chunks)
    for f0 in range(0, total, step):
        f1 = min(total, f0 + step)
        tokens = (f1 - f0) // patch
        if tokens == 0:  # a last chunk under one patch (the release pads it to one token and drops it too)
            break
        x = enc.normalize(enc.log_mel_frames(device_read, num_samples, f0, f1, peak))  # (1, 1, M, F)
        with autocast_for(model.precision, model.device):
            sem = enc.transformer(x).float()  # (1, tokens, D)
        if semantic or model.injection is None:
            yield sem[0]
            continue
        inj = model.injection
        if inj.front_end is None:  # the dashtok/1 injection reads the encoder's own mel patch
            patches = inj.patches_of(x, patch)
        else:
            patches = inj.patches_of(inj.front_end.frames_of(device_read, num_samples, f0, f1), patch)
        lengths = torch.tensor([tokens], device=model.device)
        yield model.inject(Features(semantic=sem, patches=patches, lengths=lengths))[0]


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
