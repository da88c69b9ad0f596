"""The pure-torch front end equals torchaudio (via the upstream golden fixture, within float32 rounding on any CPU)
and pins the top_db decision."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import assert_golden, relative_error
from dashtok.config import EncoderConfig, FrontendConfig, TopDbScope
from dashtok.encoder import DashengEncoder
from dashtok.frontend import AmplitudeToDB, MelSpectrogram, Spectrogram

GOLDEN = load_file(str(Path(__file__).parent / "fixtures" / "upstream_golden.safetensors"))

pytestmark = pytest.mark.golden  # golden fixtures and front-end numerics: run under every CPU kernel path
# The filterbank is derived in float32 (torchaudio's formula): 8.6e-6 of its scale from torchaudio's on the
# no-SIMD kernel path; the window is one cosine per sample.
FB_TOL, WINDOW_TOL = 1e-4, 1e-6
# dB mel, relative to the largest |dB| of the clip (50-90 dB here): 2.4e-6 measured without SIMD, 1.6e-6 on an Intel
# AVX-512/AMX CPU, 0 on the AMD AVX-512 CPU that made the fixture; a wrong window, log, frame or mel order is >1e-3.
DB_TOL = 1e-5


def encoder(scope: TopDbScope) -> DashengEncoder:
    return DashengEncoder(FrontendConfig(top_db_scope=scope), EncoderConfig.preset("tiny"))


def test_mel_filterbank_and_window_equal_torchaudio_buffers() -> None:
    mel = MelSpectrogram.dasheng(FrontendConfig())
    assert_golden(mel.mel_scale.fb, GOLDEN["model.front_end.0.mel_scale.fb"], FB_TOL)
    assert_golden(mel.spectrogram.window, GOLDEN["model.front_end.0.spectrogram.window"], WINDOW_TOL)


def test_batch_scope_reproduces_torchaudio_batched_db() -> None:
    mel = encoder("batch").log_mel(GOLDEN["wav"])
    assert_golden(mel, GOLDEN["mel_batch"], DB_TOL)


def test_each_scope_equals_torchaudio_on_single_clips() -> None:
    for scope in ("batch", "example"):
        enc = encoder(scope)
        for i, n in enumerate(GOLDEN["lengths"].tolist()):
            assert_golden(enc.log_mel(GOLDEN["wav"][i : i + 1, :n]), GOLDEN[f"mel_single_{i}"], DB_TOL)


def _hamming(enc: DashengEncoder) -> None:
    mel = enc.front_end[0]
    assert isinstance(mel, MelSpectrogram)
    mel.spectrogram.window.copy_(torch.hamming_window(mel.spectrogram.win_length))


def _mel_order_swapped(enc: DashengEncoder) -> None:
    mel = enc.front_end[0]
    assert isinstance(mel, MelSpectrogram)
    fb = mel.mel_scale.fb
    fb.copy_(fb.flip(1))


def _natural_log(enc: DashengEncoder) -> None:
    db = enc.front_end[1]
    assert isinstance(db, AmplitudeToDB)
    db.db = lambda mel: 10.0 * torch.log(torch.clamp(mel, min=db.amin))  # type: ignore[method-assign]


@pytest.mark.parametrize("wrong", [_hamming, _mel_order_swapped, _natural_log, "dropped frame"])
def test_a_wrong_front_end_fails_the_golden_tolerance(wrong: Callable[[DashengEncoder], None] | str) -> None:
    """The tolerance above still catches a real error: another window, a swapped mel order, another log base, a
    frame dropped at the start."""
    enc = encoder("batch")
    with torch.no_grad():
        if callable(wrong):
            wrong(enc)
            mel = enc.log_mel(GOLDEN["wav"])
        else:
            mel = enc.log_mel(GOLDEN["wav"][:, 160:])
            mel = torch.cat([mel, mel[..., -1:]], dim=-1)  # same shape, every frame one hop early
    assert relative_error(mel, GOLDEN["mel_batch"]) > 100 * DB_TOL


def test_top_db_floor_decision_is_pinned() -> None:
    """A quiet clip next to a loud one: per-example flooring keeps it as it is alone; torchaudio's does not."""
    g = torch.Generator().manual_seed(0)
    loud = torch.randn(1, 16000, generator=g)
    quiet = 1e-5 * torch.randn(1, 16000, generator=g)
    quiet[:, 8000:] = 0.0  # digital silence: -100 dB, > 120 dB under the loud clip's peak
    both = torch.cat([loud, quiet])
    alone = encoder("example").log_mel(quiet)
    assert torch.equal(encoder("example").log_mel(both)[1:], alone)
    batched = encoder("batch").log_mel(both)[1:]
    assert not torch.equal(batched, alone)
    assert torch.allclose(batched.amin(), encoder("batch").log_mel(loud).amax() - 120.0)


def test_blocked_stft_equals_whole() -> None:
    x = torch.randn(2, 16000 * 3, generator=torch.Generator().manual_seed(1))
    whole = Spectrogram(512, 512, 160, power=2.0, block_frames=10**6)(x)
    blocked = Spectrogram(512, 512, 160, power=2.0, block_frames=37)(x)
    assert whole.shape == (2, 257, 301)
    torch.testing.assert_close(blocked, whole, rtol=1e-5, atol=1e-7)


def test_blocks_of_one_frame_at_exact_multiples_of_the_hop_equal_torch_stft() -> None:
    """A block holding only the last frame of a signal whose length is a multiple of the hop reads the samples the
    reflection needs (10.08 s = 161280 samples once crashed the piecewise STFT)."""
    for n_fft in (512, 1024):
        for n in (1008 * 160, 2 * 1008 * 160, 1008 * 160 + 1, 1300):
            x = torch.randn(1, n, generator=torch.Generator().manual_seed(n))
            expected = torch.stft(x, n_fft, 160, n_fft, torch.hann_window(n_fft), center=True, pad_mode="reflect",
                                  return_complex=True).abs().pow(2)
            for block in (1, 3, 1008):
                got = Spectrogram(n_fft, n_fft, 160, power=2.0, block_frames=block)(x)
                torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
