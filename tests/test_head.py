"""The head contract: both phase parametrisations make the spectrum they promise, and every path through the model
(batch, windows, streaming, ONNX, save/load, training from another head) works for the parallel one as for the
release's angle head."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import make_tiny, tiny_config
from dashtok import Tokenizer
from dashtok.config import DecoderConfig
from dashtok.head import AngleHead, ParallelPhaseHead
from dashtok.streaming import StreamingDecoder


def parallel_tiny(seed: int = 0) -> Tokenizer:
    cfg = tiny_config()
    return make_tiny(seed, tiny_config(decoder={**cfg.decoder.__dict__, "phase": "parallel"}))


def test_each_head_makes_the_spectrum_it_promises() -> None:
    cfg = DecoderConfig(dim=8, n_fft=16, hop_length=4, max_magnitude=50.0)
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    angle = AngleHead(cfg)
    log_mag, phase = angle.out(x).transpose(1, 2).chunk(2, dim=1)
    expected = torch.polar(torch.exp(log_mag).clamp(max=50.0), phase)
    torch.testing.assert_close(angle.spectrum(x), expected, rtol=1e-6, atol=1e-6)
    par = ParallelPhaseHead(cfg)
    log_mag, real, imag = par.out(x).transpose(1, 2).chunk(3, dim=1)
    expected = torch.polar(torch.exp(log_mag).clamp(max=50.0), torch.atan2(imag, real))
    torch.testing.assert_close(par.spectrum(x), expected, rtol=1e-5, atol=1e-5)
    # the phase is the pair's direction, whatever its length: (0, 3) is +90 degrees
    with torch.no_grad():
        par.out.weight.zero_()
        par.out.bias.zero_()
        par.out.bias[2 * 9 :] = 3.0  # imaginary part 3, real part 0, log-magnitude 0
    assert torch.allclose(torch.angle(par.spectrum(x)), torch.full((2, 9, 5), math.pi / 2))


def test_the_parallel_head_keeps_the_models_promises(tmp_path: Path) -> None:
    model = parallel_tiny()
    assert model.head.out.out_features == 3 * 641 and model.config.hash != make_tiny().config.hash
    z = torch.randn(2, 400, 32, generator=torch.Generator().manual_seed(1))
    whole = model.decode(z).audio
    alone = model.decode(z[1:, :233]).audio
    torch.testing.assert_close(model.decode(z, torch.tensor([400, 233])).audio[1:, : alone.shape[1]], alone,
                               rtol=0, atol=1e-5)  # padded batch == one at a time
    stream = StreamingDecoder(model, block_frames=7)
    pieces = [stream.push(z[:, s : s + 13]) for s in range(0, 400, 13)] + [stream.flush()]
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-5)  # streaming == whole
    model.save(tmp_path / "p.safetensors")
    loaded = Tokenizer.load(tmp_path / "p.safetensors")
    assert loaded.config.decoder.phase == "parallel" and torch.equal(loaded.decode(z).audio, whole)


def test_the_parallel_head_exports_to_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from dashtok.export import check_onnx_decoder, export_decoder_onnx

    model = parallel_tiny()
    r = check_onnx_decoder(model, export_decoder_onnx(model, tmp_path / "dec.onnx"), frames=60, batch=2)
    assert r["max_abs_diff"] < 1e-5 * max(1.0, r["peak"]), r


def test_the_official_layout_refuses_a_head_it_does_not_have() -> None:
    from dashtok.checkpoint import CheckpointError
    from dashtok.release import official_config

    with pytest.raises(CheckpointError, match="decoder.phase 'parallel'"):
        official_config(parallel_tiny().config)


def test_training_from_an_angle_model_keeps_all_but_the_phase_rows(capsys: pytest.CaptureFixture[str]) -> None:
    from dashtok.train.tokenizer_stage import load_across_heads

    donor, model = make_tiny(0), parallel_tiny(1)
    phase_rows = model.head.out.weight[641:].detach().clone()
    load_across_heads(model, donor.state_dict(), "angle", "donor.safetensors")
    assert "its magnitude rows are taken" in capsys.readouterr().err
    mine, theirs = model.state_dict(), donor.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs if not k.startswith("head.out."))
    assert torch.equal(mine["head.out.weight"][:641], theirs["head.out.weight"][:641])
    assert torch.equal(mine["head.out.weight"][641:], phase_rows)


def test_a_finer_head_hop_keeps_streaming_exact() -> None:
    """Issue 29's finer grid (upsampling x4, head hop 160, redundancy 8) is a config: windows and streaming still
    give the one-shot audio, and a latent frame is still 640 samples."""
    cfg = tiny_config()
    model = make_tiny(0, tiny_config(decoder={**cfg.decoder.__dict__, "upsample": 4, "hop_length": 160}))
    assert model.hop_length == 640
    z = torch.randn(2, 300, 32, generator=torch.Generator().manual_seed(3))
    whole = model.decode(z).audio
    stream = StreamingDecoder(model, block_frames=7)
    pieces = [stream.push(z[:, s : s + 11]) for s in range(0, 300, 11)] + [stream.flush()]
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-5)
