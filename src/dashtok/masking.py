"""Length <-> mask helpers shared by the encoder and the decoder."""

from __future__ import annotations

import torch


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """lengths (B,) -> mask (B, max_length), True on valid positions."""
    return torch.arange(max_length, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
