"""Each measure on a known case, and the reconstruction report on a tiny model."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import speechlike
from dashtok import metrics
from dashtok.cli import main
from dashtok.eval.recon import mean_ci
from dashtok.eval.references import opus, opus_available


def test_identical_signals_score_best() -> None:
    x = speechlike(2.0)
    assert float(metrics.mel_distance(x, x)[0]) == 0.0
    assert float(metrics.si_sdr(x, x)[0]) > 100
    assert metrics.stoi(x, x) == pytest.approx(1.0, abs=1e-6)
    assert metrics.pesq_wb(x, x) == pytest.approx(4.64, abs=0.01)  # P.862.2's ceiling
    assert metrics.pesq_nb(x, x) == pytest.approx(4.55, abs=0.01)  # P.862 MOS-LQO's ceiling


def test_what_a_measure_cannot_score_is_none_or_an_error_not_a_number() -> None:
    pytest.importorskip("pystoi")
    x = speechlike(2.0)
    assert metrics.stoi(np.zeros_like(x), x) is None  # silence: undefined (pystoi said 0)
    assert metrics.stoi(x[:3000], x[:3000]) is None  # under ~0.4 s: pystoi warned and said 1e-5
    short = torch.from_numpy(x[:700]).requires_grad_()  # shorter than half the longest mel window (2048)
    d = metrics.mel_distance(short, 0.5 * short.detach())
    d.sum().backward()
    assert float(d.detach()[0]) > 0 and short.grad is not None and bool(torch.isfinite(short.grad).all())
    with pytest.raises(ValueError, match="empty"):
        metrics.mel_distance(x[:0], x[:0])


def test_pesq_scores_long_inputs_in_windows_without_crashing() -> None:
    """The pesq package segfaults past ~150 s: a 190 s pair is the length-weighted mean of 7 windows of 27.1 s."""
    speech, _ = sf.read(Path(metrics.__file__).parent / "assets" / "demo_speech.flac", dtype="float32")
    x = np.tile(speech, int(np.ceil(190 * 16000 / len(speech))))[: 190 * 16000]  # 190 s of the bundled real speech
    y = (x + 0.02 * np.random.default_rng(0).standard_normal(len(x))).astype(np.float32)
    bounds = np.linspace(0, len(x), 8).astype(int)
    windows = [(metrics.pesq_wb(x[a:b], y[a:b]), b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    expected = sum(float(s) * n for s, n in windows) / len(x)  # type: ignore[arg-type]
    assert metrics.pesq_wb(x, y) == pytest.approx(expected, abs=1e-9)
    assert 1.0 < expected < 4.64


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_si_sdr_of_added_noise_equals_the_snr(snr: float) -> None:
    """With zero-mean noise orthogonal to the signal, SI-SDR is exactly the SNR."""
    rng = np.random.default_rng(0)
    x = speechlike(2.0).astype(np.float64)
    x -= x.mean()
    noise = rng.standard_normal(len(x))
    noise -= noise.mean()
    noise -= (noise @ x) / (x @ x) * x
    noise *= np.sqrt(np.sum(x**2) / np.sum(noise**2) / 10 ** (snr / 10))
    assert float(metrics.si_sdr(x, x + noise)[0]) == pytest.approx(snr, abs=0.01)


def test_measures_degrade_with_noise() -> None:
    rng = np.random.default_rng(1)
    x = speechlike(3.0)
    scores = []
    for snr in (30, 10, 0):
        n = rng.standard_normal(len(x)) * np.sqrt(np.mean(x**2) / 10 ** (snr / 10))
        y = (x + n).astype(np.float32)
        scores.append((float(metrics.mel_distance(x, y)[0]), metrics.pesq_wb(x, y), metrics.stoi(x, y)))
    mel, pesq, stoi = zip(*scores, strict=True)
    assert mel[0] < mel[1] < mel[2] and pesq[0] > pesq[1] > pesq[2] and stoi[0] > stoi[1] > stoi[2]


def test_mel_distance_is_differentiable() -> None:
    x = torch.from_numpy(speechlike(1.0))[None]
    y = (x + 0.01 * torch.randn_like(x)).requires_grad_()
    metrics.mel_distance(x, y).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()


def test_confidence_interval_is_students_t() -> None:
    r = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert r["mean"] == 2.5 and r["n"] == 4
    assert r["ci95"] == pytest.approx(3.1824 * np.std([1, 2, 3, 4], ddof=1) / 2, abs=1e-4)  # t(0.975, 3)
    for n, t in ((6, 2.5706), (11, 2.2281), (20, 2.0930), (30, 2.0452), (201, 1.9719)):  # t(0.975, n - 1)
        values = np.arange(n, dtype=np.float64)
        assert mean_ci(list(values))["ci95"] == pytest.approx(t * values.std(ddof=1) / np.sqrt(n), rel=2e-4)


def test_eval_recon_report(tmp_path: Path, tiny_ckpt: Path) -> None:
    speech, music = tmp_path / "voices", tmp_path / "notes"
    speech.mkdir()
    music.mkdir()
    for i in range(3):
        sf.write(speech / f"{i}.wav", speechlike(1.5, seed=i), 16000)
    sf.write(speech / "truncated.wav", speechlike(1.5), 16000)
    (speech / "truncated.wav").write_bytes((speech / "truncated.wav").read_bytes()[:30])  # a cut-off download
    out = tmp_path / "report"
    assert main(["eval", "recon", "--folder", str(speech), "-o", str(out), "-c", str(tiny_ckpt)]) == 1  # the cut one
    report = json.loads((out / "recon.json").read_text())
    group = report["groups"]["voices"]
    assert group["mel_distance"]["n"] == 3 and "pesq_wb" in group and "stoi" in group
    assert [Path(s["path"]).name for s in report["skipped"]] == ["truncated.wav"]
    assert "| voices | 3 |" in (out / "recon.md").read_text()
    assert "truncated.wav" in (out / "recon.md").read_text().split("Skipped 1 unreadable file(s):")[1]
    assert set(group["artifact_tone"]) == {"db", "hz"}
    assert np.isfinite(group["artifact_tone_0hz_db"])
    assert "(0 Hz: " in (out / "recon.md").read_text()
    if opus_available():  # the reference codec rows, scored on the same clips
        assert set(report["references"]) == {"opus 6 kbit/s", "opus 12 kbit/s", "opus 24 kbit/s"}
        rows = {k: v["voices"] for k, v in report["references"].items()}
        assert all(r["mel_distance"]["n"] == 3 for r in rows.values())
        # more bits, closer to the input
        assert rows["opus 6 kbit/s"]["mel_distance"]["mean"] > rows["opus 24 kbit/s"]["mel_distance"]["mean"]
        assert "| voices | opus 12 kbit/s |" in (out / "recon.md").read_text()
    else:
        assert "no Opus rows" in (out / "recon.md").read_text()


def test_artifact_tone_finds_an_added_tone_and_nothing_in_clean_copies() -> None:
    """A stationary 7773 Hz tone added to every output stands out of the average spectrum; so does a DC offset;
    unchanged or merely noisier outputs give about 0 dB."""
    rng = np.random.default_rng(0)
    clips = [speechlike(2.0, seed=i) for i in range(4)]
    t = np.arange(len(clips[0])) / 16000

    def spectra(change) -> tuple[metrics.AverageSpectrum, metrics.AverageSpectrum]:  # type: ignore[no-untyped-def]
        ins, outs = metrics.AverageSpectrum(), metrics.AverageSpectrum()
        for c in clips:
            ins.add(c)
            outs.add(change(c))
        return ins, outs

    def measure(change) -> dict:  # type: ignore[no-untyped-def]
        return metrics.artifact_tone(*spectra(change))

    tone = measure(lambda c: c + 0.01 * np.sin(2 * np.pi * 7773 * t))  # -30 dBFS
    assert tone["db"] > 20 and abs(tone["hz"] - 7773) < 4
    dc = measure(lambda c: c + 0.05)
    assert dc["db"] > 20 and dc["hz"] == 0.0

    assert metrics.dc_tone_db(*spectra(lambda c: c + 0.05)) > 20  # the offset's, in bin 0
    # a tone elsewhere: nothing at 0 Hz
    assert abs(metrics.dc_tone_db(*spectra(lambda c: c + 0.01 * np.sin(2 * np.pi * 7773 * t)))) < 1
    assert measure(lambda c: c)["db"] == 0.0
    assert measure(lambda c: c + 0.003 * rng.standard_normal(len(c)))["db"] < 6


@pytest.mark.skipif(not opus_available(), reason="ffmpeg with libopus is not installed")
def test_opus_reference_keeps_length_and_improves_with_bitrate() -> None:
    x = speechlike(3.0)
    scores = {}
    for kbps in (6, 24):
        y = opus(x, 16000, kbps)
        assert y.shape == x.shape and y.dtype == np.float32
        scores[kbps] = float(metrics.mel_distance(x, y)[0])
    assert scores[24] < scores[6] < 2.0


def test_probe_separates_clear_classes_and_is_at_chance_on_shuffled_labels() -> None:
    from dashtok.eval.probe import probe_task

    rng = np.random.default_rng(0)
    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        x = rng.standard_normal((n, 16))
        x[:, :4] += 2.0 * (2 * y[:, None] - 1)  # four informative directions
        return x, y
    data = {s: split(n) for s, n in (("train", 200), ("valid", 100), ("test", 400))}
    feats = {s: d[0] for s, d in data.items()}
    clear = probe_task(feats, {s: d[1] for s, d in data.items()}, 2, seeds=(0,))
    assert clear["linear"] > 0.97 and clear["knn"] > 0.9
    shuffled = {s: rng.permutation(d[1]) for s, d in data.items()}
    chance = probe_task(feats, shuffled, 2, seeds=(0,))
    assert abs(chance["linear"] - 0.5) < 0.08 and abs(chance["knn"] - 0.5) < 0.08


@pytest.mark.skipif(not Path("/usr/bin/espeak-ng").exists(), reason="audio tools missing")
def test_full_report_on_a_tiny_corpus(tmp_path: Path, tiny_ckpt: Path) -> None:
    from dashtok.data.build import build

    build(tmp_path / "corpus", preset="tiny", seed=1, log=False)
    out = tmp_path / "eval"
    assert main(["eval", "all", str(tmp_path / "corpus"), "-o", str(out), "-c", str(tiny_ckpt),
                 "--max-per-source", "2"]) == 0
    assert (out / "probe_bars.png").is_file() and (out / "spectrogram_real-speech.png").is_file()
    text = (out / "report.md").read_text()
    assert "## Reconstruction" in text and "## Linear probes" in text and "| real-speech |" in text
    recon = json.loads((out / "recon.json").read_text())
    assert recon["groups"]["real-speech"]["mel_distance"]["n"] == 2
    report = json.loads((out / "probe.json").read_text())
    assert report["tasks"], "no task had enough clips"
    for row in report["tasks"].values():
        for rep in ("logmel", "semantic", "latents"):
            assert 0.0 <= row[rep]["linear"] <= 1.0 and 0.0 <= row[rep]["knn"] <= 1.0


def test_xares_encoder_contract(tiny_ckpt: Path) -> None:
    """The checks X-ARES's audio_encoder_checker makes (both the tensor and the (audio, mask) variant), offline."""
    import inspect

    from dashtok.eval.xares_encoder import DashtokEncoder

    enc = DashtokEncoder(str(tiny_ckpt))
    assert type(enc).__name__.endswith("Encoder") and isinstance(enc, torch.nn.Module)
    assert (enc.output_dim, enc.sampling_rate, enc.hop_size_in_ms) == (32, 16000, 40.0)
    assert len(inspect.signature(enc.forward).parameters) >= 2
    x = torch.randn(2, 50000)
    out = enc(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 78, 32)
    masked = DashtokEncoder(str(tiny_ckpt), return_mask=True)
    attention = torch.ones(3, 50000, dtype=torch.long)
    attention[1, 30000:] = 0
    feats, mask = masked(torch.randn(3, 50000), attention)
    assert feats.shape == (3, 78, 32) and mask.shape == (3, 78) and mask.dtype == torch.bool
    assert int(mask[1].sum()) == 47 and bool(mask[0].all())
    semantic = DashtokEncoder(str(tiny_ckpt), features="semantic")(x)
    assert semantic.shape == (2, 78, 32) and not torch.equal(semantic, out)
    assert enc(torch.randn(1, 100)).shape == (1, 1, 32)  # shorter than a frame: padded, not refused


def test_dnsmos_and_speaker_similarity_rank_known_cases() -> None:
    rng = np.random.default_rng(0)
    x = speechlike(4.0)
    noisy = np.clip(x + 0.2 * rng.standard_normal(len(x)).astype(np.float32), -1, 1)
    clean_mos, noisy_mos = metrics.dnsmos(x), metrics.dnsmos(noisy)
    assert clean_mos is not None and noisy_mos is not None
    assert noisy_mos["bak"] < clean_mos["bak"]  # loud white noise: a worse background score
    same = metrics.speaker_similarity(x, x)
    other = metrics.speaker_similarity(x, speechlike(4.0, seed=3) * 0 + np.sin(np.arange(len(x)) * 0.3))
    assert same is not None and other is not None
    assert same == pytest.approx(1.0, abs=1e-4) and other < same


def test_eval_curves_overlays_run_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, offset in (("a", 0.0), ("b", 0.1)):
        run = tmp_path / name
        run.mkdir()
        (run / "metrics.csv").write_text("step,seconds,mel/l1,lr\n" + "".join(
            f"{s},{s},{1.0 / s + offset},0.001\n" for s in range(1, 30)))
        (run / "eval.csv").write_text("step,pesq_wb,ema/pesq_wb\n10,2.0,2.1\n20,2.2,nan\n")
    out = tmp_path / "curves.png"
    assert main(["eval", "curves", str(tmp_path / "a"), f"{tmp_path / 'b'}=second", "-o", str(out),
                 "--csv", str(tmp_path / "valid.csv")]) == 0
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") == round(2 * 4.2 * 90)  # two measures: two panels, no empty ones
    rows = (tmp_path / "valid.csv").read_text().splitlines()
    assert rows[0] == "run,step,pesq_wb,ema/pesq_wb" and len(rows) == 5 and rows[3].startswith("second,10,")
    with pytest.raises(SystemExit):  # no silent overwrite
        main(["eval", "curves", str(tmp_path / "a"), "-o", str(out)])
    with pytest.raises(SystemExit):
        main(["eval", "curves", str(tmp_path / "missing"), "-o", str(tmp_path / "x.png")])
    assert "no such run folder" in capsys.readouterr().err
