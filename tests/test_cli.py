"""The dashtok command line: round trips in tmp_path, no silent overwrite, bad files reported and skipped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import speechlike
from dashtok import Tokenizer
from dashtok.cli import main
from dashtok.latents_io import read_latents


@pytest.fixture()
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "one.wav"
    sf.write(path, speechlike(1.0), 16000)
    return path


def run(*args: object) -> int:
    return main([str(a) for a in args])


def test_encode_decode_round_trip(tmp_path: Path, wav: Path, tiny_ckpt: Path, tiny: Tokenizer) -> None:
    lat = tmp_path / "one.safetensors"
    assert run("encode", wav, "-o", lat, "-c", tiny_ckpt) == 0
    lf = read_latents(lat)
    assert lf.latents.shape == (25, 32) and lf.original_num_samples == [16000]
    assert lf.model_id == tiny.model_id == Tokenizer.load(tiny_ckpt).model_id
    out = tmp_path / "back.wav"
    assert run("decode", lat, "-o", out, "-c", tiny_ckpt) == 0
    audio, sr = sf.read(out)
    assert sr == 16000 and audio.shape == (16000,)
    expected = Tokenizer.load(tiny_ckpt).decode(lf.latents).audio[0].numpy()
    np.testing.assert_allclose(audio, np.clip(expected, -1, 1), atol=1 / 32767 + 1e-6)


def test_no_overwrite_without_force(tmp_path: Path, wav: Path, tiny_ckpt: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    lat = tmp_path / "one.safetensors"
    lat.write_bytes(b"precious")
    with pytest.raises(SystemExit) as exit_:
        run("encode", wav, "-o", lat, "-c", tiny_ckpt)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--force" in err[0]
    assert lat.read_bytes() == b"precious"
    assert run("encode", wav, "-o", lat, "-c", tiny_ckpt, "--force") == 0
    assert read_latents(lat).latents.shape == (25, 32)


def test_inferred_output_name(tmp_path: Path, wav: Path, tiny_ckpt: Path) -> None:
    assert run("encode", wav, "-c", tiny_ckpt) == 0
    assert (tmp_path / "one.safetensors").is_file()
    assert run("decode", tmp_path / "one.safetensors", "-c", tiny_ckpt, "-f") == 0
    assert sf.info(tmp_path / "one.wav").frames == 16000


def test_directory_tree_with_bad_files_keeps_going(tmp_path: Path, tiny_ckpt: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    sf.write(src / "a.wav", speechlike(1.0), 16000)
    sf.write(src / "sub" / "b.flac", np.stack([speechlike(2.0, sr=44100), speechlike(2.0, seed=1, sr=44100)], 1), 44100)
    (src / "sub" / "broken.wav").write_bytes(b"RIFFnope")
    sf.write(src / "short.wav", np.zeros(100), 16000)
    out = tmp_path / "out"
    assert run("encode", src, "-o", out, "-c", tiny_ckpt, "-q") == 1
    err = capsys.readouterr().err
    assert "broken.wav: not a readable audio file" in err and "short.wav" in err and "2 of 4" in err
    assert read_latents(out / "a.safetensors").latents.shape == (25, 32)
    assert read_latents(out / "sub" / "b.safetensors").latents.shape == (50, 32)
    assert not (out / "sub" / "broken.safetensors").exists()
    assert run("decode", out, "-o", tmp_path / "dec", "-c", tiny_ckpt, "-q") == 0
    assert sf.info(tmp_path / "dec" / "sub" / "b.wav").frames == 32000


def test_length_bucketed_batches_equal_one_at_a_time(tmp_path: Path, tiny_ckpt: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, seconds in enumerate([0.5, 3.1, 1.2, 0.7, 2.9, 1.25, 0.02]):  # the last is shorter than a frame
        sf.write(src / f"c{i}.wav", speechlike(seconds, seed=i, amp=0.05 + 0.1 * i), 16000)
    (src / "broken.wav").write_bytes(b"RIFFnope")
    assert run("encode", src, "-o", tmp_path / "one", "-c", tiny_ckpt, "-q") == 1
    capsys.readouterr()
    assert run("encode", src, "-o", tmp_path / "many", "-c", tiny_ckpt, "-q", "--batch-size", "3") == 1
    err = capsys.readouterr().err
    assert "broken.wav" in err and "c6.wav" in err and "2 of 8" in err
    for i in range(6):
        a = read_latents(tmp_path / "one" / f"c{i}.safetensors")
        b = read_latents(tmp_path / "many" / f"c{i}.safetensors")
        assert a.latents.shape == b.latents.shape and a.original_num_samples == b.original_num_samples
        np.testing.assert_allclose(b.latents.numpy(), a.latents.numpy(), rtol=0, atol=1e-5)


def test_latents_from_another_model_are_refused(tmp_path: Path, wav: Path, tiny_ckpt: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    lat = tmp_path / "one.safetensors"
    assert run("encode", wav, "-o", lat) == 0  # bundled default model
    assert run("decode", lat, "-o", tmp_path / "x.wav", "-c", tiny_ckpt) == 1
    assert "latents" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_reconstruct_writes_latents_audio_and_metrics(tmp_path: Path, wav: Path, tiny_ckpt: Path) -> None:
    out = tmp_path / "rec"
    assert run("reconstruct", wav, "-o", out, "-c", tiny_ckpt) == 0
    report = json.loads((out / "metrics.json").read_text())
    row = report["files"][0]
    assert report["trained"] is False and row["latent_frames"] == 25
    assert np.isfinite(row["mel_distance"]) and np.isfinite(row["si_sdr_db"]) and row["encode_rtf"] > 0
    assert sf.info(out / "one.wav").frames == 16000 and (out / "one.safetensors").is_file()


def test_info_and_bad_checkpoint(tmp_path: Path, tiny_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("info", tiny_ckpt, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["latent_dim"] == 32 and info["frame_rate"] == 25.0 and info["trained"] is False
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"zzz")
    with pytest.raises(SystemExit) as exit_:
        run("info", bad)
    assert exit_.value.code == 2
    assert str(bad) in capsys.readouterr().err


def test_installed_entry_point(tmp_path: Path, wav: Path) -> None:
    exe = Path(sys.executable).with_name("dashtok")
    env = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"}
    proc = subprocess.run([str(exe), "reconstruct", str(wav), "-o", str(tmp_path / "r")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "mel distance" in proc.stdout and (tmp_path / "r" / "metrics.json").is_file()
    proc = subprocess.run([str(exe), "decode", str(tmp_path / "nothing.safetensors")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no such file" in proc.stderr
