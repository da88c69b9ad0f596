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
    assert run("decode", tmp_path / "one.safetensors", "-c", tiny_ckpt) == 0  # never aimed at the source: no -f
    assert sf.info(tmp_path / "one.decoded.wav").frames == 16000


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


def test_reconstruct_scores_speech_measures_on_speech_only(tmp_path: Path, wav: Path, tiny_ckpt: Path) -> None:
    assert run("reconstruct", wav, "-o", tmp_path / "m", "-c", tiny_ckpt, "--domain", "music", "-q") == 0
    row = json.loads((tmp_path / "m" / "metrics.json").read_text())["files"][0]
    assert row["domain"] == "music" and row["pesq_wb"] is None and row["stoi"] is None
    assert np.isfinite(row["mel_distance"])


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


def one_error_line(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """Run a command that must be refused: exit code 2, exactly one line on stderr, no traceback."""
    with pytest.raises(SystemExit) as exit_:
        run(*argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dashtok") and ": error: " in err[0], err
    return err[0]


@pytest.mark.parametrize("device, needle", [("foo", "not a torch device"), ("cuda", "--device cuda: "),
                                            ("tpu", "not a torch device")])
def test_unusable_devices_are_one_line_before_any_work(tmp_path: Path, wav: Path, tiny_ckpt: Path, device: str,
                                                       needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    if device == "cuda" and __import__("torch").cuda.is_available():
        pytest.skip("a CUDA device is visible")
    for command in (["encode", wav, "-o", tmp_path / "x.safetensors"], ["reconstruct", wav, "-o", tmp_path / "r"],
                    ["generate", "a dog barks", "-o", tmp_path / "g.wav"]):
        assert needle in one_error_line(capsys, *command, "-c", tiny_ckpt, "--device", device)
    assert list(tmp_path.iterdir()) == [wav]  # nothing was written


def test_outputs_the_command_cannot_write_are_refused_by_name(tmp_path: Path, wav: Path, tiny_ckpt: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    lat = tmp_path / "one.safetensors"
    assert run("encode", wav, "-o", lat, "-c", tiny_ckpt) == 0
    assert "not .mp3" in one_error_line(capsys, "decode", lat, "-o", tmp_path / "x.mp3", "-c", tiny_ckpt)
    assert not (tmp_path / "x.mp3").exists()  # once a directory called x.mp3
    assert "not .ogg" in one_error_line(capsys, "encode", wav, "-o", tmp_path / "x.ogg", "-c", tiny_ckpt)
    assert "not .wav" in one_error_line(capsys, "reconstruct", wav, "-o", tmp_path / "r.wav", "-c", tiny_ckpt)
    assert not (tmp_path / "x.ogg").exists() and not (tmp_path / "r.wav").exists()
    # converting helps where audio was asked of a command that writes audio, not of one that writes latents
    assert "ffmpeg" in one_error_line(capsys, "decode", lat, "-o", tmp_path / "x.mp3", "-c", tiny_ckpt)
    assert "ffmpeg" not in one_error_line(capsys, "encode", wav, "-o", tmp_path / "x.wav", "-c", tiny_ckpt)


def test_a_file_output_for_several_inputs_is_refused(tmp_path: Path, wav: Path, tiny_ckpt: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "two.wav"
    sf.write(other, speechlike(1.0, seed=1), 16000)
    msg = one_error_line(capsys, "encode", wav, other, "-o", tmp_path / "x.safetensors", "-c", tiny_ckpt)
    assert "names one .safetensors file, but 2 inputs were given" in msg
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "a.wav", speechlike(1.0), 16000)  # a directory input is never one file, however many it holds
    msg = one_error_line(capsys, "enhance", folder, "-o", tmp_path / "y.wav")
    assert f"but {folder} is a directory or manifest" in msg
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "y.wav").exists()


def test_numeric_options_must_make_sense(wav: Path, tiny_ckpt: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("0", "-1", "nan"):
        assert "--max-seconds" in one_error_line(capsys, "encode", wav, "-c", tiny_ckpt, "--max-seconds", value)
    for value in ("nan", "inf"):
        msg = one_error_line(capsys, "generate", "a dog", "-o", tmp_path / "g.wav", "--guidance", value)
        assert "--guidance" in msg and "finite" in msg


def test_generate_checks_its_arguments_before_loading_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from dashtok.generate.model import TextToAudio

    def never(*_: object, **__: object) -> None:
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(TextToAudio, "from_pretrained", never)
    for argv, needle in ((["--seconds", "0"], "--seconds 0: must be in (0, 60]"),
                         (["--seconds", "61"], "--seconds 61: must be in (0, 60]"),
                         (["--steps", "0"], "--steps 0: must be at least 1"),
                         (["-o", tmp_path / "z.mp3"], "not .mp3"),
                         (["-o", tmp_path / "z.txt"], "a .wav or .flac file")):
        out = [] if "-o" in argv else ["-o", tmp_path / "g.wav"]
        assert needle in one_error_line(capsys, "generate", "a piano", *out, *argv)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_batch_size_must_be_a_positive_integer(wav: Path, tiny_ckpt: Path, value: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert "--batch-size" in one_error_line(capsys, "encode", wav, "-c", tiny_ckpt, "--batch-size", value)


def test_outputs_past_full_scale_are_reported_or_rescaled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dashtok.cli_common import write_output

    loud = 1.28 * np.sin(np.linspace(0, 200 * np.pi, 16000)).astype(np.float32)
    write_output(tmp_path / "clipped.wav", loud, 16000, rescale=False)
    err = capsys.readouterr().err
    assert "clipped.wav" in err and "peak 1.28" in err and "--rescale" in err
    assert np.abs(sf.read(tmp_path / "clipped.wav")[0]).max() == pytest.approx(1.0, abs=1e-4)
    write_output(tmp_path / "scaled.wav", loud, 16000, rescale=True)
    assert capsys.readouterr().err == ""
    scaled = sf.read(tmp_path / "scaled.wav")[0]
    assert np.abs(scaled).max() == pytest.approx(0.99, abs=1e-4)
    np.testing.assert_allclose(scaled, loud * 0.99 / np.abs(loud).max(), atol=1 / 32767 + 1e-6)


def test_reconstruct_scores_what_it_can_and_writes_metrics_as_it_goes(tmp_path: Path, tiny_ckpt: Path) -> None:
    """Digital silence (which PESQ refuses) is written with PESQ n/a, not reported as a failed file."""
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a_speech.wav", speechlike(1.0), 16000)
    sf.write(src / "b_silence.wav", np.zeros(16000), 16000)
    (src / "c_broken.wav").write_bytes(b"RIFFnope")
    sf.write(src / "d_short.wav", speechlike(1000 / 16000), 16000)  # shorter than the mel distance's longest window
    assert run("reconstruct", src, "-o", tmp_path / "rec", "-c", tiny_ckpt, "-q") == 1  # the broken file
    rows = {Path(r["input"]).name: r for r in json.loads((tmp_path / "rec" / "metrics.json").read_text())["files"]}
    assert set(rows) == {"a_speech.wav", "b_silence.wav", "d_short.wav"}
    assert rows["b_silence.wav"]["pesq_wb"] is None and rows["b_silence.wav"]["stoi"] is None  # silence: undefined
    assert rows["d_short.wav"]["stoi"] is None and np.isfinite(rows["d_short.wav"]["mel_distance"])
    assert (tmp_path / "rec" / "b_silence.wav").is_file()


def test_a_file_that_fails_after_encoding_leaves_no_outputs(tmp_path: Path, wav: Path, tiny_ckpt: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from dashtok import metrics

    def broken(*_: object, **__: object) -> None:
        raise ValueError("scoring failed")

    monkeypatch.setattr(metrics, "mel_distance", broken)
    assert run("reconstruct", wav, "-o", tmp_path / "rec", "-c", tiny_ckpt, "-q") == 1
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["metrics.json"]


def test_decoding_a_file_of_several_items_never_overwrites_unasked(tmp_path: Path, tiny: Tokenizer,
                                                                   tiny_ckpt: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from dashtok.latents_io import LatentFile, write_latents

    enc = tiny.encode(np.stack([speechlike(1.0), speechlike(1.0, seed=1)]))
    lat = tmp_path / "two.safetensors"
    write_latents(lat, LatentFile(latents=enc.latents, sample_rate=16000, frame_rate=25.0,
                                  original_num_samples=[16000, 16000], model_id=tiny.model_id,
                                  config_hash=tiny.config.hash, lengths=enc.lengths))
    assert run("decode", lat, "-c", tiny_ckpt) == 0
    first = sf.read(tmp_path / "two.decoded_0.wav")[0]
    assert first.shape == (16000,) and (tmp_path / "two.decoded_1.wav").is_file()
    (tmp_path / "two.decoded_1.wav").write_bytes(b"precious")
    (tmp_path / "two.decoded_0.wav").unlink()
    assert run("decode", lat, "-c", tiny_ckpt) == 1
    assert "two.decoded_1.wav already exists" in capsys.readouterr().err
    assert (tmp_path / "two.decoded_1.wav").read_bytes() == b"precious"
    assert run("decode", lat, "-c", tiny_ckpt, "--force") == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "two.decoded_0.wav")[0], first)


def test_failure_summaries_read_as_english(tmp_path: Path, tiny_ckpt: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFFnope")
    assert run("encode", bad, "-c", tiny_ckpt) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == "dashtok: the file failed; nothing was written for it"
    bad.write_bytes(b"")
    assert run("encode", bad, "-c", tiny_ckpt) == 1
    assert f"{bad}: empty file (0 bytes)" in capsys.readouterr().err
    for name in ("a.safetensors", "b.safetensors"):
        (tmp_path / name).write_bytes(b"x")
    sf.write(tmp_path / "a.wav", speechlike(1.0), 16000)
    sf.write(tmp_path / "b.wav", speechlike(1.0), 16000)
    msg = one_error_line(capsys, "encode", tmp_path / "a.wav", tmp_path / "b.wav", "-c", tiny_ckpt)
    assert msg.endswith("a.safetensors and 1 more output(s) already exist; pass --force to overwrite")
    assert run("encode", tmp_path / "a.wav", bad, "-c", tiny_ckpt, "--force") == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "dashtok: 1 of 2 files failed; the other file was written"


def test_info_describes_every_file_the_project_writes(tmp_path: Path, wav: Path, tiny_ckpt: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    lat = tmp_path / "one.safetensors"
    assert run("encode", wav, "-o", lat, "-c", tiny_ckpt) == 0
    capsys.readouterr()
    assert run("info", lat, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [25, 32] and info["seconds"] == [1.0] and info["model_id"].startswith("dashtok-tiny@")
    assert "read_latents" in info["read_in_python"]
    package_file = __import__("dashtok").__file__
    assert package_file is not None
    assets = Path(package_file).parent / "assets"
    for name, kind in (("generator.safetensors", "text-to-audio generator"),
                       ("enhancer.safetensors", "latent speech enhancer")):
        assert run("info", assets / name) == 0
        out = capsys.readouterr().out
        assert kind in out and "tokenizer_id" in out and "training:\n  {" in out  # the record indented, not one line
    assert run("info", tiny_ckpt) == 0
    assert "latent_dim       32" in capsys.readouterr().out  # a tokenizer, as before


def test_skip_existing_goes_on_where_a_stopped_run_was(tmp_path: Path, tiny_ckpt: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        sf.write(src / f"c{i}.wav", speechlike(1.0, seed=i), 16000)
    out = tmp_path / "out"
    assert run("encode", src, "-o", out, "-c", tiny_ckpt, "-q") == 0
    (out / "c1.safetensors").unlink()  # as if the run had stopped before it
    kept = (out / "c0.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert run("encode", src, "-o", out, "-c", tiny_ckpt, "-q", "--skip-existing") == 0
    assert "skipping 2 file(s) whose output exists" in capsys.readouterr().err
    assert (out / "c1.safetensors").is_file() and (out / "c0.safetensors").stat().st_mtime_ns == kept


@pytest.mark.parametrize("fault, needle", [(OSError(28, "No space left on device"), "the disk is full"),
                                           (MemoryError(), "out of memory")])
def test_an_environment_fault_stops_the_run_in_one_line_and_keeps_finished_files(
        tmp_path: Path, tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        fault: BaseException, needle: str) -> None:
    """A full disk or no memory is not a bad file: the run stops at once (not file after file), says so in one line
    and keeps what it wrote; --skip-existing then goes on."""
    import dashtok.cli as cli

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        sf.write(src / f"c{i}.wav", speechlike(1.0, seed=i), 16000)
    real = cli.encode_file_to_file
    calls: list[Path] = []

    def flaky(model: Tokenizer, source: Path, *args: object, **kwargs: object) -> None:
        calls.append(source)
        if source.name == "c1.wav":
            raise fault
        real(model, source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "encode_file_to_file", flaky)
    out = tmp_path / "out"
    msg = one_error_line(capsys, "encode", src, "-o", out, "-c", tiny_ckpt, "-q")
    assert needle in msg and "stopped after 1 finished file(s)" in msg and "--skip-existing" in msg
    assert [c.name for c in calls] == ["c0.wav", "c1.wav"] and (out / "c0.safetensors").is_file()
    monkeypatch.setattr(cli, "encode_file_to_file", real)
    assert run("encode", src, "-o", out, "-c", tiny_ckpt, "-q", "--skip-existing") == 0
    assert sorted(p.name for p in out.iterdir()) == ["c0.safetensors", "c1.safetensors", "c2.safetensors"]


def test_corpus_commands_refuse_what_is_not_a_corpus(tmp_path: Path, wav: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for argv, needle in ((["data", "build", wav], "is a file, not a corpus directory"),
                         (["data", "build", tmp_path], "holds other files, not a corpus of ours"),
                         (["data", "build", tmp_path / "new", "--hours", "-1"], "--hours"),
                         (["data", "build", tmp_path / "new", "--workers", "0"], "--workers"),
                         (["eval", "gen", tmp_path / "nope", "--system", "a", "default", "default", "-o",
                           tmp_path / "g"], "not a corpus folder (no test.jsonl"),
                         (["eval", "probe", tmp_path, "-o", tmp_path / "p"], "not a corpus folder (no train.jsonl")):
        assert needle in one_error_line(capsys, *argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.wav"]
