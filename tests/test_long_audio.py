"""Long recordings encode chunk group by chunk group in bounded memory, equal to encoding them whole."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import make_tiny, speechlike, tiny_config
from dashtok.audio_io import load_audio
from dashtok.cli import main
from dashtok.latents_io import LatentFile, latent_writer, read_latents
from dashtok.long_audio import SampleFile


def recording(seconds: float) -> torch.Tensor:
    """Speech-like audio whose later part is nearly silent: the dB floor (the whole recording's peak - 120 dB)
    binds there, so encoding piecewise is only right if the floor comes from the whole recording."""
    x = speechlike(seconds, seed=3)
    x[int(len(x) * 0.6):] *= 1e-6
    return torch.from_numpy(x)


@pytest.mark.parametrize("injection", [{"enabled": True}, {"enabled": True, "front_end": "encoder_mel"},
                                       {"enabled": False}])
def test_encoding_in_chunk_groups_equals_whole(injection: dict) -> None:
    model = make_tiny(config=tiny_config(injection=injection))
    x = recording(45.3)  # 4 full 10 s chunks and a partial one
    whole = model.encode(x, return_semantic=True)
    read = lambda a, b: x[a:b]  # noqa: E731
    for step in (1, 2):
        parts = torch.cat(list(model.encode_stream(read, len(x), chunks_per_step=step)))
        torch.testing.assert_close(parts, whole.latents[0], rtol=0, atol=1e-6)
    semantic = torch.cat(list(model.encode_stream(read, len(x), semantic=True)))
    assert whole.semantic is not None
    torch.testing.assert_close(semantic, whole.semantic[0], rtol=0, atol=1e-6)
    # encode() of one recording runs the same loop as `dashtok encode` (groups of 4 chunks there, 8 here: equal
    # within float rounding); the padded-batch path (several items, and training's features()) too
    torch.testing.assert_close(torch.cat(list(model.encode_stream(read, len(x), chunks_per_step=4))),
                               whole.latents[0], rtol=0, atol=1e-6)
    with torch.no_grad():
        batched = model.inject(model.features(x[None]))
    torch.testing.assert_close(batched, whole.latents, rtol=0, atol=1e-6)


def test_only_the_needed_samples_are_read() -> None:
    model = make_tiny()
    x = recording(35.0)
    spans: list[tuple[int, int]] = []

    def read(a: int, b: int) -> torch.Tensor:
        spans.append((a, b))
        return x[a:b]

    list(model.encode_stream(read, len(x), chunks_per_step=1))
    chunk = 1008 * 160
    assert len(spans) == 4 + 2 * 4  # 35 s = 4 chunks: the peak pass, then both front ends, a chunk at a time
    assert max(b - a for a, b in spans) <= chunk + 1024  # one chunk plus the STFT margins


def test_cli_encodes_file_to_file_equal_to_whole(tmp_path: Path) -> None:
    """44.1 kHz stereo input: decoded and resampled once, block by block, into the same samples load_audio gives."""
    model = make_tiny()
    ckpt = tmp_path / "tiny.safetensors"
    model.save(ckpt)
    x = recording(23.0).numpy()
    stereo = np.stack([x, 0.5 * x], axis=1)
    sf.write(tmp_path / "long.wav", stereo, 16000)
    import soxr

    sf.write(tmp_path / "long44.flac", soxr.resample(stereo, 16000, 44100), 44100, subtype="PCM_24")
    for name in ("long.wav", "long44.flac"):
        out = tmp_path / f"{name}.safetensors"
        assert main(["encode", str(tmp_path / name), "-o", str(out), "-c", str(ckpt), "-q"]) == 0
        lf = read_latents(out)
        audio = load_audio(tmp_path / name, 16000)
        expected = model.encode(audio).latents[0]
        assert lf.original_num_samples == [len(audio)] and lf.latents.shape == expected.shape
        torch.testing.assert_close(lf.latents, expected, rtol=0, atol=1e-5)


def test_sample_file_round_trips_and_cleans_up(tmp_path: Path) -> None:
    x = speechlike(3.0)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    before = set(tmp_path.iterdir())
    with SampleFile.from_audio_file(tmp_path / "a.wav", 16000, directory=str(tmp_path)) as s:
        assert s.num_samples == len(x)
        assert torch.equal(s.read(1000, 1500), torch.from_numpy(x[1000:1500]))
        assert set(tmp_path.iterdir()) == before  # anonymous: nothing to leave behind, even if killed


def test_latent_writer_refuses_a_short_file(tmp_path: Path) -> None:
    meta = LatentFile(latents=torch.zeros(0, 8), sample_rate=16000, frame_rate=25.0, original_num_samples=[6400],
                      model_id="m@x", config_hash="h")
    with latent_writer(tmp_path / "ok.safetensors", 10, meta) as w:
        w.write(torch.ones(4, 8))
        w.write(torch.zeros(6, 8))
    lf = read_latents(tmp_path / "ok.safetensors")
    assert lf.latents.shape == (10, 8) and float(lf.latents[:4].sum()) == 32.0
    with pytest.raises(ValueError, match="3 latent frames written"):
        with latent_writer(tmp_path / "short.safetensors", 10, meta) as w:
            w.write(torch.ones(3, 8))
    assert not (tmp_path / "short.safetensors").exists()


def test_chunk_multiple_lengths_and_unwritable_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """10.08 s (one chunk exactly) encodes file to file as whole; an output that cannot be written is one error
    line naming it, not a traceback."""
    model = make_tiny()
    ckpt = tmp_path / "tiny.safetensors"
    model.save(ckpt)
    x = speechlike(10.08)
    assert len(x) == 161280
    sf.write(tmp_path / "exact.wav", x, 16000, subtype="FLOAT")
    assert main(["encode", str(tmp_path / "exact.wav"), "-c", str(ckpt), "-q"]) == 0
    torch.testing.assert_close(read_latents(tmp_path / "exact.safetensors").latents, model.encode(x).latents[0],
                               rtol=0, atol=1e-6)
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    assert main(["encode", str(tmp_path / "exact.wav"), "-o", str(blocker / "z.safetensors"), "-c", str(ckpt),
                 "-q"]) == 1
    err = capsys.readouterr().err
    assert "exact.wav" in err and "Traceback" not in err
