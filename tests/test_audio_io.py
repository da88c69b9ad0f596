"""Every kind of file we may be handed: formats, depths, channels, rates; and the bad ones, named clearly."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import speechlike
from dashtok.audio_io import AudioError, find_audio_files, iter_audio_blocks, load_audio, write_audio


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2, 8])
def test_depths_and_channels(tmp_path: Path, subtype: str, channels: int) -> None:
    mono = speechlike(0.5)
    data = np.stack([mono * (1 - 0.1 * c) for c in range(channels)], axis=1)
    path = tmp_path / "x.wav"
    sf.write(path, data, 16000, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (8000,)
    tol = {"PCM_U8": 2e-2, "PCM_24": 1e-5, "PCM_16": 1e-4, "FLOAT": 1e-6}[subtype]
    np.testing.assert_allclose(audio, data.mean(axis=1), atol=tol)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_any_rate_is_resampled_to_16k(tmp_path: Path, rate: int) -> None:
    path = tmp_path / "x.flac"
    t = np.arange(rate) / rate
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), rate)
    audio = load_audio(path)
    assert abs(len(audio) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(audio[2000:14000] * np.hanning(12000)))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 440) < 2


def test_blockwise_reading_equals_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    sf.write(path, np.stack([speechlike(3.0), speechlike(3.0, seed=1)], axis=1), 48000)
    np.testing.assert_allclose(load_audio(path, block_frames=777), load_audio(path), atol=1e-6)


def test_bad_files_are_named_with_their_problem(tmp_path: Path) -> None:
    cases = {}
    cases["missing"] = (tmp_path / "missing.wav", "no such file")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    cases["corrupt"] = (corrupt, "not a readable audio file")
    text = tmp_path / "notes.flac"
    text.write_text("this is not audio")
    cases["text"] = (text, "not a readable audio file")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    cases["empty"] = (empty, "empty audio")
    nan = tmp_path / "nan.wav"
    x = speechlike(0.5)
    x[4000] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    cases["nan"] = (nan, "NaN or Inf samples (the first at 0.250 s)")  # where it is, not where its block ends
    full = tmp_path / "full.wav"
    sf.write(full, speechlike(1.0), 16000)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(full.read_bytes()[:20000])
    cases["truncated"] = (truncated, "truncated")
    for name, (path, message) in cases.items():
        with pytest.raises(AudioError) as err:
            load_audio(path)
        assert str(err.value).startswith(str(path)), name
        assert message in str(err.value), (name, str(err.value))
    with pytest.raises(AudioError, match=r"16000 samples at 16000 Hz \(1\.00 s\), over the limit of 0\.5 s"):
        load_audio(full, max_seconds=0.5)
    with pytest.raises(AudioError, match=r"the first at 0\.250 s"):  # in the fifth block of 1000 frames
        list(iter_audio_blocks(nan, block_frames=1000))


def test_silent_and_clipped_files_load(tmp_path: Path) -> None:
    sf.write(tmp_path / "silent.wav", np.zeros(16000), 16000)
    assert not load_audio(tmp_path / "silent.wav").any()
    sf.write(tmp_path / "clipped.wav", np.clip(5 * speechlike(1.0), -1, 1), 16000)
    assert np.abs(load_audio(tmp_path / "clipped.wav")).max() <= 1.0


def test_write_round_trip_and_clipping_count(tmp_path: Path) -> None:
    x = speechlike(0.5)
    x[:10] = 1.5
    assert write_audio(tmp_path / "o.wav", x, 16000) == 10
    back = load_audio(tmp_path / "o.wav")
    np.testing.assert_allclose(back[10:], x[10:], atol=1e-4)
    with pytest.raises(AudioError, match="extension"):
        write_audio(tmp_path / "o.xyz", x, 16000)


def test_find_audio_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["a/1.wav", "a/b/2.FLAC", "a/readme.txt", "3.ogg"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)] == ["3.ogg", "a/1.wav",
                                                                                          "a/b/2.FLAC"]
