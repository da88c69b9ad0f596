"""Reduced precision (bf16 autocast, int8 dynamic quantization) and the ONNX decoder: close to float32, and the
parts that must stay float32 do."""

from pathlib import Path

import pytest
import torch

from conftest import make_tiny, speechlike
from dashtok import Tokenizer
from dashtok.cli import main
from dashtok.export import DFTInverse, check_onnx_decoder, export_decoder_onnx
from dashtok.latents_io import read_latents
from dashtok.precision import set_precision
from dashtok.spectral import ISTFT


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.from_numpy(speechlike(3.0, seed=5))


@pytest.mark.parametrize("precision, bound", [("bf16", 0.05), ("int8", 0.05)])
def test_reduced_precision_stays_close_to_float32(clip: torch.Tensor, precision: str, bound: float) -> None:
    ref = Tokenizer.from_pretrained()
    z32 = ref.encode(clip).latents
    a32 = ref.decode(z32).audio
    low = set_precision(Tokenizer.from_pretrained(), precision)
    z = low.encode(clip).latents
    assert z.dtype == torch.float32 and relative_error(z, z32) < bound
    audio = low.decode(z32).audio
    assert audio.dtype == torch.float32 and relative_error(audio, a32) < 2 * bound
    assert 1e-4 < relative_error(z, z32)  # the precision really changed something


def test_int8_quantizes_the_blocks_only_and_refuses_to_save(tmp_path: Path) -> None:
    model = set_precision(make_tiny(), "int8")
    kinds = {type(m).__module__ for m in model.encoder.blocks.modules()}
    assert any("quantized" in k for k in kinds)
    assert type(model.injection.proj).__module__.startswith("torch.nn.modules")  # type: ignore[union-attr]
    assert type(model.head.out).__module__.startswith("torch.nn.modules")
    with pytest.raises(ValueError, match="int8"):
        model.save(tmp_path / "q.safetensors")


def test_fp16_on_cpu_and_unknown_precisions_are_refused() -> None:
    with pytest.raises(ValueError, match="GPU"):
        set_precision(make_tiny(), "fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        set_precision(make_tiny(), "fp8")


def test_cli_precision_flag(tmp_path: Path, tiny_ckpt: Path, tiny: Tokenizer) -> None:
    import soundfile as sf

    wav = tmp_path / "a.wav"
    sf.write(wav, speechlike(2.0), 16000)
    assert main(["encode", str(wav), "-o", str(tmp_path / "a.safetensors"), "-c", str(tiny_ckpt), "-q",
                 "--precision", "bf16"]) == 0
    z = read_latents(tmp_path / "a.safetensors").latents
    assert relative_error(z, tiny.encode(speechlike(2.0)).latents[0]) < 0.05
    with pytest.raises(SystemExit) as exit_info:  # a clear error, not a crash
        main(["encode", str(wav), "-o", str(tmp_path / "b.safetensors"), "-c", str(tiny_ckpt), "-q",
              "--precision", "fp16"])
    assert exit_info.value.code == 2


def test_dft_istft_equals_the_fold_istft() -> None:
    g = torch.Generator().manual_seed(0)
    spec = torch.randn(2, 641, 30, generator=g, dtype=torch.complex64)
    ref = ISTFT(1280, 320)(spec)
    out = DFTInverse(1280, 320)(spec.real, spec.imag)
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-5 * float(ref.abs().max()))


def test_onnx_decoder_matches_pytorch_in_onnx_runtime(tmp_path: Path, tiny_ckpt: Path) -> None:
    model = make_tiny()
    path = export_decoder_onnx(model, tmp_path / "dec.onnx")
    for frames, batch in [(250, 2), (7, 1)]:  # dynamic batch and length
        r = check_onnx_decoder(model, path, frames=frames, batch=batch)
        assert r["max_abs_diff"] < 1e-5 * max(1.0, r["peak"]), r
    assert main(["export-onnx", "-o", str(tmp_path / "cli.onnx"), "-c", str(tiny_ckpt)]) == 0
    with pytest.raises(SystemExit):  # no silent overwrite
        main(["export-onnx", "-o", str(tmp_path / "cli.onnx"), "-c", str(tiny_ckpt)])
    for output in (tmp_path / "x.wav", tmp_path):  # refused before the export, not after it
        with pytest.raises(SystemExit):
            main(["export-onnx", "-o", str(output), "-c", str(tiny_ckpt), "--force"])
    assert not (tmp_path / "x.wav").exists()
