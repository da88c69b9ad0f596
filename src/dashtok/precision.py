"""Reduced-precision inference: bf16/fp16 autocast and CPU int8 dynamic quantization.

What stays float32 in every mode: the log-mel front end (its dB floor needs the range) and the iSTFT head (phase
errors of 16-bit floats are audible). What changes:

- ``bf16`` / ``fp16``: the encoder transformer, the injection and the decoder blocks run under ``torch.autocast``
  (bf16 on CPUs with AVX-512 BF16 or AMX, and on GPUs; fp16 on GPUs).
- ``int8``: the ``nn.Linear`` layers of the encoder blocks and of the decoder's ConvNeXt blocks are replaced by
  dynamically quantized ones (int8 weights, activations quantized per batch), CPU only. The injection layer and
  the head stay float32. A quantized model cannot be saved as a checkpoint.

The measured cost in quality and the speed gain are reported by ``dashtok bench`` and ``dashtok eval recon
--precision``.
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, nullcontext
from typing import Literal, Protocol, TypeVar

import torch
from torch import nn

Precision = Literal["fp32", "bf16", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix products run in hardware on ``device``: a CUDA GPU that has them (Ampere and later), or a
    CPU with AVX-512 BF16 or AMX.
    Elsewhere torch emulates them and bf16 autocast is many times slower than float32 (a GAN step of the long run
    on a 2-core AVX2 EPYC: 63 s in bf16, 5.8 s in float32). Unknown (an older torch): assumed native."""
    if device.type != "cpu":
        return device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    known = [probe for probe in probes if probe is not None]
    return not known or any(probe() for probe in known)


def autocast_for(precision: str, device: torch.device) -> AbstractContextManager[object]:
    """The autocast context of a precision on a device (a no-op for fp32 and int8)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if precision not in _AUTOCAST:
        return nullcontext()
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 inference needs a GPU; on CPU use bf16 or int8")
    return torch.autocast(device.type, dtype=_AUTOCAST[precision])


class HasPrecision(Protocol):
    """A model whose inference precision can be switched (``Tokenizer`` is one)."""

    precision: str

    @property
    def device(self) -> torch.device: ...

    def int8_modules(self) -> list[nn.Module]:
        """The modules whose ``nn.Linear`` layers int8 replaces."""
        ...


M = TypeVar("M", bound=HasPrecision)


def set_precision(model: M, precision: str) -> M:
    """Switch a loaded model to ``precision`` in place (int8 cannot be undone) and return it."""
    autocast_for(precision, model.device)  # validates the name and the device
    if precision == "int8":
        if model.device.type != "cpu":
            raise ValueError("int8 dynamic quantization runs on CPU only; on GPU use bf16 or fp16")
        getattr(model, "latent_id", None)  # a tokenizer's latent id is measured on the float weights, kept after
        with warnings.catch_warnings():  # torch marks its eager quantization API as deprecated (still in 2.13)
            warnings.simplefilter("ignore")
            for module in model.int8_modules():
                torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=True)
    model.precision = precision
    return model
