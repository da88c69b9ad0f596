"""X-ARES adapter: run the paper's 22-task benchmark on any dashtok checkpoint.

X-ARES (PyPI ``xares``) loads a Python file, builds the class whose name ends in ``Encoder`` with no arguments and
calls ``forward(audio)`` on (B, T) 16 kHz audio, expecting (B, N, D) frame embeddings plus the attributes
``output_dim``, ``sampling_rate`` and ``hop_size_in_ms``. With the X-ARES data downloaded::

    DASHTOK_CHECKPOINT=path/to/model.safetensors DASHTOK_FEATURES=latents \\
        python -m xares.run --max-jobs 4 src/dashtok/eval/xares_encoder.py src/tasks/*.py

``DASHTOK_FEATURES=semantic`` scores the frozen encoder alone (the paper's comparison). Newer X-ARES versions pass
``(audio, attention_mask)`` and want ``(embeddings, mask)`` back: set ``DASHTOK_XARES_MASK=1``.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from dashtok.tokenizer import Tokenizer


class DashtokEncoder(nn.Module):
    def __init__(self, checkpoint: str | None = None, features: str | None = None,
                 return_mask: bool | None = None) -> None:
        super().__init__()
        checkpoint = checkpoint or os.environ.get("DASHTOK_CHECKPOINT") or None
        self.features = features or os.environ.get("DASHTOK_FEATURES", "latents")
        if self.features not in ("latents", "semantic"):
            raise ValueError(f"features must be 'latents' or 'semantic', got {self.features!r}")
        self.return_mask = bool(int(os.environ.get("DASHTOK_XARES_MASK", "0"))) if return_mask is None \
            else return_mask
        self.tokenizer = Tokenizer.from_pretrained(checkpoint)
        self.output_dim = self.tokenizer.latent_dim
        self.sampling_rate = self.tokenizer.sample_rate
        self.hop_size_in_ms = 1000.0 / self.tokenizer.frame_rate

    def forward(self, audio: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """audio (B, T) at 16 kHz; attention_mask (B, T), nonzero on valid samples -> (B, N, D) [, mask (B, N)]."""
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        lengths = None if attention_mask is None else attention_mask.ne(0).sum(1)
        short = self.tokenizer.config.min_num_samples - audio.shape[-1]
        if short > 0:  # clips under one 40 ms frame are padded with silence rather than refused
            audio = nn.functional.pad(audio, (0, short))
        if lengths is not None:
            lengths = lengths.clamp(min=self.tokenizer.config.min_num_samples)
        enc = self.tokenizer.encode(audio, lengths, return_semantic=self.features == "semantic")
        out = enc.semantic if self.features == "semantic" and enc.semantic is not None else enc.latents
        out = out.to(audio.device)
        if not self.return_mask:
            return out
        mask = torch.arange(out.shape[1], device=audio.device)[None] < enc.lengths.to(audio.device)[:, None]
        return out, mask
