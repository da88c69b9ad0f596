"""Tiny, seeded, offline fixtures shared by the tests."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from dashtok import Tokenizer, TokenizerConfig

SR = 16000


# Golden fixtures (tests/fixtures) were written by reference code (torchaudio, the official release, upstream dasheng)
# or an earlier dashtok on one machine. float32 results of another kernel path (AVX-512, AVX2 or no SIMD, MKL or not,
# another CPU) differ from them by rounding, so they are compared relative to the tensor's scale, never bit for bit;
# exact equality is kept for two sides computed in one process (batch == single, chunked == whole, save == load).
def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected|; inf when the shapes differ."""
    if actual.shape != expected.shape:
        return float("inf")
    return float((actual.double() - expected.double()).abs().max() / expected.double().abs().max())


def assert_golden(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    """``actual`` equals the golden ``expected`` within ``rel`` of its scale (see above)."""
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} vs golden {tuple(expected.shape)}"
    err = relative_error(actual, expected)
    assert err <= rel, f"relative difference {err:.3g} > {rel:.3g}"


def pytest_report_header() -> str:
    """The kernel path the tests ran on: golden tolerances, bf16 and int8 results depend on it."""
    from dashtok.precision import native_bf16

    return (f"CPU capability {torch.backends.cpu.get_cpu_capability()} (ATEN_CPU_CAPABILITY="
            f"{os.environ.get('ATEN_CPU_CAPABILITY', 'unset')}), bf16 in hardware: {native_bf16(torch.device('cpu'))}")


def tiny_config(**changes: object) -> TokenizerConfig:
    cfg = TokenizerConfig.preset("tiny")
    return TokenizerConfig.from_dict({**cfg.to_dict(), **changes})


def make_tiny(seed: int = 0, config: TokenizerConfig | None = None) -> Tokenizer:
    torch.manual_seed(seed)
    model = Tokenizer(config or tiny_config())
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a trained encoder has
        bn = model.encoder.init_bn[1]
        assert isinstance(bn, torch.nn.BatchNorm2d) and bn.running_mean is not None and bn.running_var is not None
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


@contextmanager
def ticking_clock(seconds: float = 20.0) -> Iterator[None]:
    """``time.perf_counter`` advancing ``seconds`` a reading: a ``max_minutes`` budget runs out after a few steps of
    training, on any CPU."""
    ticks = itertools.count()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "perf_counter", lambda: seconds * next(ticks))
        yield
