"""Windowed decoding: the one implementation behind ``Tokenizer.decode`` of long latents and streaming decoding.

The decoder is convolutional, so an output frame depends only on ``context_frames`` latent frames on each side.
A window holding a block plus that context on both sides gives, on the block, exactly what one-shot decoding gives;
at the end of the stream the window ends where the sequence ends, so it sees the same zero padding. Memory is one
window whatever the length, and the latency is ``block_frames + context_frames`` latent frames.
"""

from __future__ import annotations

import math
import operator
from typing import Protocol

import torch

from dashtok.codec import validate_latents
from dashtok.config import DecoderConfig


def context_frames(cfg: DecoderConfig) -> int:
    """Latent frames on each side that influence one decoded frame (decoder convolutions + iSTFT overlap)."""
    return math.ceil((cfg.receptive_field + math.ceil(cfg.n_fft / cfg.hop_length)) / cfg.upsample) + 1


class Synthesizer(Protocol):
    """What windowed decoding needs of a model (``Tokenizer`` is one)."""

    @property
    def device(self) -> torch.device: ...
    @property
    def latent_dim(self) -> int: ...
    @property
    def hop_length(self) -> int: ...
    @property
    def decoder_context(self) -> int: ...  # context_frames of its decoder

    def synthesize(self, latents: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor: ...


class StreamingDecoder:
    """Decode a stream of latents ``(B, n, D)`` pushed in pieces of any size.

    >>> stream = StreamingDecoder(model)
    >>> pieces = [stream.push(z[:, i : i + 10]) for i in range(0, z.shape[1], 10)] + [stream.flush()]
    >>> torch.cat(pieces, dim=1)  # equals model.decode(z).audio to float precision

    Every ``push`` returns the audio that became final, ``(B, k * hop_length)`` with k >= 0; ``flush`` ends the
    stream and returns the rest. All items of a batch are streams of the same length, unless ``lengths`` (B,)
    gives each item's valid frames of a padded batch pushed whole (what ``Tokenizer.decode`` does): then every
    window decodes each item as it is alone and samples past an item's end are zeros.
    """

    def __init__(self, model: Synthesizer, block_frames: int = 50, lengths: torch.Tensor | None = None) -> None:
        try:
            whole = operator.index(block_frames)
        except TypeError:
            whole = 0
        if whole < 1:
            raise ValueError(f"block_frames must be a whole number >= 1, got {block_frames!r}")
        block_frames = whole
        self.model = model
        self.block = block_frames
        self.context = model.decoder_context
        self.lengths = lengths
        self._buffer: torch.Tensor | None = None  # (B, m, D): latents from frame self._start on
        self._start = 0  # absolute index of the buffer's first frame
        self._emitted = 0  # frames whose audio has been returned
        self._total = 0  # frames pushed
        self._done = False

    @property
    def latency_frames(self) -> int:
        """Latent frames that must arrive after a frame before its audio is returned."""
        return self.block + self.context

    @torch.no_grad()
    def push(self, latents: torch.Tensor) -> torch.Tensor:
        if self._done:
            raise RuntimeError("push after flush: start a new StreamingDecoder")
        if self.lengths is None:
            z, _ = validate_latents(latents, None, self.model.latent_dim, self.model.device, allow_empty=True)
        else:  # a padded batch, validated whole (NaN may sit in its padding) by its caller
            z = torch.as_tensor(latents, dtype=torch.float32, device=self.model.device)
        if self._buffer is not None and z.shape[0] != self._buffer.shape[0]:
            raise ValueError(f"batch size changed from {self._buffer.shape[0]} to {z.shape[0]} within a stream")
        self._buffer = z if self._buffer is None else torch.cat([self._buffer, z], dim=1)
        self._total += z.shape[1]
        out = []
        while self._total - self._emitted >= self.block + self.context:
            out.append(self._emit(self._emitted + self.block, self._emitted + self.block + self.context))
        return self._join(out)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """End of stream: the audio of every frame not yet returned."""
        self._done = True
        out = []
        while self._emitted < self._total:
            end = min(self._total, self._emitted + self.block)
            out.append(self._emit(end, min(self._total, end + self.context)))
        return self._join(out)

    def _emit(self, end: int, right: int) -> torch.Tensor:
        """Decode the window [emitted - context, right) and return the audio of frames [emitted, end)."""
        assert self._buffer is not None
        hop = self.model.hop_length
        left = max(0, self._emitted - self.context)
        window = self._buffer[:, left - self._start : right - self._start]
        lengths = None if self.lengths is None else (self.lengths - left).clamp(0, right - left)
        audio = self.model.synthesize(window, lengths)[:, (self._emitted - left) * hop : (end - left) * hop]
        self._emitted = end
        keep = max(0, self._emitted - self.context)  # frames before this are never needed again
        self._buffer = self._buffer[:, keep - self._start :]
        self._start = keep
        return audio

    def _join(self, pieces: list[torch.Tensor]) -> torch.Tensor:
        if pieces:
            return torch.cat(pieces, dim=1)
        b = 1 if self._buffer is None else self._buffer.shape[0]
        return torch.zeros(b, 0, device=self.model.device)
