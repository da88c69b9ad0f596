"""Export of the decoder (latents -> waveform) to ONNX.

``torch.fft.irfft`` and ``fold`` do not export, so :class:`OnnxDecoder` writes the iSTFT with operators every ONNX
runtime has: the inverse real DFT is two matmuls with cosine and sine bases (the synthesis window folded in),
overlap-add is a transposed convolution with an identity kernel, and the window envelope is the same transposed
convolution of the squared window. It computes what ``Tokenizer.decode`` computes for unpadded batches; the
check in :func:`check_onnx_decoder` runs the file with ONNX Runtime and reports the difference.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dashtok.atomic import atomic_write

if TYPE_CHECKING:
    from dashtok.tokenizer import Tokenizer


class DFTInverse(nn.Module):
    """spec (B, n_fft // 2 + 1, L) as real and imaginary parts -> audio (B, L * hop), "same" padding.

    Equals ``dashtok.spectral.ISTFT`` without frame masks, built from matmul and conv_transpose1d only.
    """

    cos_basis: torch.Tensor
    sin_basis: torch.Tensor
    identity: torch.Tensor
    window_sq: torch.Tensor

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        bins = n_fft // 2 + 1
        k = torch.arange(bins, dtype=torch.float64)[:, None]
        n = torch.arange(n_fft, dtype=torch.float64)[None, :]
        # irfft: x[n] = (X_0 + X_{N/2} (-1)^n + 2 sum_{0<k<N/2} Re(X_k e^{2 pi i k n / N})) / N
        weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
        weight[0] = weight[-1] = 1.0
        window = torch.hann_window(n_fft, dtype=torch.float64)
        angle = 2 * math.pi * k * n / n_fft
        self.register_buffer("cos_basis", (weight * torch.cos(angle) / n_fft * window).float(), persistent=False)
        self.register_buffer("sin_basis", (-weight * torch.sin(angle) / n_fft * window).float(), persistent=False)
        self.register_buffer("identity", torch.eye(n_fft)[:, None, :], persistent=False)  # (n_fft, 1, n_fft)
        self.register_buffer("window_sq", window.square().float()[None, None, :], persistent=False)

    def forward(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        frames = torch.einsum("bfl,fn->bnl", real, self.cos_basis) + torch.einsum("bfl,fn->bnl", imag, self.sin_basis)
        audio = F.conv_transpose1d(frames, self.identity, stride=self.hop_length)[:, 0]  # (B, (L-1)*hop + n_fft)
        ones = torch.ones_like(frames[:1, :1, :])
        envelope = F.conv_transpose1d(ones, self.window_sq, stride=self.hop_length)[:, 0]
        pad = (self.n_fft - self.hop_length) // 2
        audio = audio[:, pad : audio.shape[1] - pad]
        envelope = envelope[:, pad : envelope.shape[1] - pad]
        safe = envelope > 1e-11
        return torch.where(safe, audio / torch.where(safe, envelope, torch.ones_like(envelope)),
                           torch.zeros_like(audio))


class OnnxDecoder(nn.Module):
    """latents (B, N, D) -> audio (B, N * hop_length): the model's decoder and head, exportable."""

    def __init__(self, model: Tokenizer) -> None:
        super().__init__()
        cfg = model.config.decoder
        self.decoder = model.decoder
        self.head = model.head  # its polar parts in real arithmetic; the inverse DFT below replaces its iSTFT
        self.istft = DFTInverse(cfg.n_fft, cfg.hop_length)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        mag, cos, sin = self.head.polar(self.decoder(latents))
        return self.istft(mag * cos, mag * sin)


def export_decoder_onnx(model: Tokenizer, path: str | Path, opset: int = 18) -> Path:
    """Write the decoder as ONNX (input ``latents`` (batch, frames, D), output ``audio`` (batch, samples))."""
    module = OnnxDecoder(model).eval().cpu()
    example = torch.randn(1, 50, model.latent_dim)
    batch, frames = torch.export.Dim("batch", max=1024), torch.export.Dim("frames", min=2, max=1_000_000)
    p = Path(path)
    # The exporter logs a warning per torchvision operator it cannot register (torchvision is not a dependency and
    # the decoder uses none of them) and torch's own pytree code raises a FutureWarning: noise for the user, so both
    # are silenced for the export only.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with atomic_write(p) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            program = torch.onnx.export(module, (example,), input_names=["latents"], output_names=["audio"],
                                        dynamic_shapes={"latents": {0: batch, 1: frames}}, opset_version=opset,
                                        dynamo=True, verbose=False)
            if program is None:
                raise RuntimeError("torch.onnx.export returned no program")
            program.save(str(tmp), external_data=False)
    finally:
        registration.setLevel(level)
    return p


def check_onnx_decoder(model: Tokenizer, path: str | Path, frames: int = 250, batch: int = 2,
                       seed: int = 0) -> dict[str, float]:
    """Run the ONNX file with ONNX Runtime (CPU) on latents drawn from the model's latent statistics and compare
    with ``Tokenizer.decode``. Returns the max absolute difference and the SNR of the difference in dB."""
    import onnxruntime as ort

    g = torch.Generator().manual_seed(seed)
    z = model.denormalize_latents(torch.randn(batch, frames, model.latent_dim, generator=g).to(model.device))
    reference = model.decode(z).audio.cpu().numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    audio = session.run(["audio"], {"latents": z.cpu().numpy().astype(np.float32)})[0]
    if audio.shape != reference.shape:
        raise RuntimeError(f"{path}: ONNX output shape {audio.shape} != PyTorch {reference.shape}")
    err = audio - reference
    snr = 10 * np.log10(np.sum(reference**2) / max(float(np.sum(err**2)), 1e-30))
    return {"max_abs_diff": float(np.abs(err).max()), "snr_db": float(snr), "peak": float(np.abs(reference).max())}
