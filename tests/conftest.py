"""Tiny, seeded, offline fixtures shared by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dashtok import Tokenizer, TokenizerConfig

SR = 16000


def tiny_config(**changes: object) -> TokenizerConfig:
    cfg = TokenizerConfig.preset("tiny")
    return TokenizerConfig.from_dict({**cfg.to_dict(), **changes})


def make_tiny(seed: int = 0, config: TokenizerConfig | None = None) -> Tokenizer:
    torch.manual_seed(seed)
    model = Tokenizer(config or tiny_config())
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a trained encoder has
        bn = model.encoder.init_bn[1]
        bn.running_mean.copy_(torch.linspace(-60, -20, bn.num_features))
        bn.running_var.copy_(torch.linspace(20, 60, bn.num_features))
    return model.eval()


@pytest.fixture(scope="session")
def tiny() -> Tokenizer:
    return make_tiny()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory, tiny: Tokenizer) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    tiny.save(path)
    return path


def speechlike(seconds: float, seed: int = 0, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    """A seeded harmonic tone with vibrato plus noise: deterministic audio with speech-like structure."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
    return (amp * x / np.abs(x).max() + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)
