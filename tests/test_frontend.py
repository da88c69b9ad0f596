"""The pure-torch front end equals torchaudio (via the upstream golden fixture) and pins the top_db decision."""

from pathlib import Path

import torch
from safetensors.torch import load_file

from dashtok.config import EncoderConfig, FrontendConfig
from dashtok.encoder import DashengEncoder
from dashtok.frontend import MelSpectrogram, Spectrogram

GOLDEN = load_file(str(Path(__file__).parent / "fixtures" / "upstream_golden.safetensors"))


def encoder(scope: str) -> DashengEncoder:
    return DashengEncoder(FrontendConfig(top_db_scope=scope), EncoderConfig.preset("tiny"))


def test_mel_filterbank_and_window_equal_torchaudio_buffers() -> None:
    mel = MelSpectrogram.dasheng(FrontendConfig())
    assert torch.equal(mel.mel_scale.fb, GOLDEN["model.front_end.0.mel_scale.fb"])
    assert torch.equal(mel.spectrogram.window, GOLDEN["model.front_end.0.spectrogram.window"])


def test_batch_scope_reproduces_torchaudio_batched_db_exactly() -> None:
    mel = encoder("batch").log_mel(GOLDEN["wav"])
    assert torch.equal(mel, GOLDEN["mel_batch"])


def test_each_scope_equals_torchaudio_on_single_clips() -> None:
    for scope in ("batch", "example"):
        enc = encoder(scope)
        for i, n in enumerate(GOLDEN["lengths"].tolist()):
            assert torch.equal(enc.log_mel(GOLDEN["wav"][i : i + 1, :n]), GOLDEN[f"mel_single_{i}"])


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
