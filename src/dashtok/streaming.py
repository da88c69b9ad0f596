"""Streaming decoding: latents arrive piece by piece, audio leaves as soon as the decoder's receptive field allows.

The decoder is convolutional, so an output frame depends only on ``context_frames`` latent frames on each side.
A window holding a block plus that context on both sides gives, on the block, exactly what one-shot decoding gives;
at the end of the stream the window ends where the sequence ends, so it sees the same zero padding. Memory is one
window whatever the length, and the latency is ``block_frames + context_frames`` latent frames.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from dashtok.tokenizer import Tokenizer


def context_frames(model: Tokenizer) -> int:
    """Latent frames on each side that influence one decoded frame (decoder convolutions + iSTFT overlap)."""
    cfg = model.config.decoder
    return math.ceil((cfg.receptive_field + math.ceil(cfg.n_fft / cfg.hop_length)) / cfg.upsample) + 1


class StreamingDecoder:
    """Decode a stream of latents ``(B, n, D)`` pushed in pieces of any size.

    >>> stream = StreamingDecoder(model)
    >>> pieces = [stream.push(z[:, i : i + 10]) for i in range(0, z.shape[1], 10)] + [stream.flush()]
    >>> torch.cat(pieces, dim=1)  # equals model.decode(z).audio to float precision

    Every ``push`` returns the audio that became final, ``(B, k * hop_length)`` with k >= 0; ``flush`` ends the
    stream and returns the rest. All items of a batch are streams of the same length.
    """

    def __init__(self, model: Tokenizer, block_frames: int = 50) -> None:
        if block_frames < 1:
            raise ValueError(f"block_frames must be >= 1, got {block_frames}")
        self.model = model
        self.block = block_frames
        self.context = context_frames(model)
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
        z = torch.as_tensor(latents, dtype=torch.float32, device=self.model.device)
        if z.ndim == 2:
            z = z.unsqueeze(0)
        if z.ndim != 3 or z.shape[-1] != self.model.latent_dim:
            raise ValueError(f"latents must be (n, {self.model.latent_dim}) or (B, n, {self.model.latent_dim}), "
                             f"got shape {tuple(z.shape)}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError("latents contain NaN or Inf")
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
        audio = self.model.synthesize(window)[:, (self._emitted - left) * hop : (end - left) * hop]
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
