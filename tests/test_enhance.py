"""Speech enhancement in latent space: identity at init, the stage trains, CLI and report work; the baseline helps."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import speechlike
from dashtok import Tokenizer, metrics
from dashtok.cli import main
from dashtok.generate.enhance import MASK_FLOOR, MASK_GRID, EnhancerConfig, LatentEnhancer, wiener_baseline
from dashtok.generate.tied import Tie
from dashtok.spectral import masked_by


def _mixture_manifest(folder: Path, n: int) -> Path:
    """A training manifest of ``n`` speech-like clean clips and their mixtures with white noise (gain 1), in
    ``folder``."""
    rng = np.random.default_rng(0)
    (folder / "audio").mkdir()
    rows = []
    for i in range(n):
        clean = speechlike(2.0, seed=i)
        sf.write(folder / "audio" / f"clean{i}.wav", clean, 16000)
        sf.write(folder / "audio" / f"mix{i}.wav", clean + 0.05 * rng.standard_normal(len(clean)), 16000)
        rows.append({"id": f"clean{i}", "source": "test", "split": "train", "domain": "speech", "caption": "",
                     "labels": {}, "path": f"audio/clean{i}.wav", "duration": 2.0})
        rows.append({"id": f"mix{i}", "source": "mixture", "split": "train", "domain": "mixture", "caption": "",
                     "labels": {"clean_id": f"clean{i}", "gain": 1.0}, "path": f"audio/mix{i}.wav",
                     "duration": 2.0})
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "train.jsonl"


def test_an_enhancer_works_with_any_tokenizer_of_its_latents_and_old_files_learn_their_latent_id(
        tiny_ckpt: Path, tmp_path: Path) -> None:
    from dashtok.checkpoint import CheckpointError
    from dashtok.generate.tied import add_latent_id, require_tokenizer

    tok = Tokenizer.load(tiny_ckpt)
    retuned = Tokenizer.load(tiny_ckpt)  # another decoder on the same latents
    with torch.no_grad():
        retuned.head.out.bias.add_(0.1)
    retuned.save(tmp_path / "retuned.safetensors")
    other = Tokenizer.load(tiny_ckpt)  # another injection: other latents
    assert other.injection is not None
    with torch.no_grad():
        next(other.injection.parameters()).add_(0.1)
    other.save(tmp_path / "other.safetensors")
    cfg = EnhancerConfig(latent_dim=32, dim=16, depth=1, heads=2)
    LatentEnhancer(cfg, Tie.to(tok)).save(tmp_path / "new.safetensors")
    LatentEnhancer(cfg, Tie(tok.model_id)).save(tmp_path / "old.safetensors")  # as files before latent ids
    new, old = LatentEnhancer.load(tmp_path / "new.safetensors"), LatentEnhancer.load(tmp_path / "old.safetensors")
    require_tokenizer(retuned, new.tie, "enhancer")
    for tied, codec in ((new, other), (old, retuned)):
        with pytest.raises(CheckpointError, match="trained on latents of"):
            require_tokenizer(codec, tied.tie, "enhancer")
    with pytest.raises(CheckpointError, match="tied to"):
        add_latent_id(tmp_path / "old.safetensors", other)
    assert add_latent_id(tmp_path / "old.safetensors", tok) == new.tie
    migrated = LatentEnhancer.load(tmp_path / "old.safetensors")
    require_tokenizer(retuned, migrated.tie, "enhancer")
    assert all(torch.equal(v, old.state_dict()[k]) for k, v in migrated.state_dict().items())


def test_untrained_enhancer_is_the_identity_on_latents(tiny_ckpt: Path) -> None:
    tok = Tokenizer.load(tiny_ckpt)
    enh = LatentEnhancer(EnhancerConfig(latent_dim=32, dim=16, depth=1, heads=2), Tie.to(tok))
    x = speechlike(1.0)
    resynth = tok.decode(tok.encode(x).latents).audio[0].numpy()[: len(x)]
    np.testing.assert_allclose(enh.enhance(tok, x, render="decoder"), resynth, atol=1e-5)
    # by default that decoding is a gain on the input
    mask = masked_by(torch.from_numpy(resynth), torch.from_numpy(x), MASK_FLOOR, *MASK_GRID).numpy()
    np.testing.assert_allclose(enh.enhance(tok, x), mask, atol=1e-5)
    with pytest.raises(ValueError, match="render must be one of"):
        enh.enhance(tok, x, render="phase")
    # integer PCM is scaled as encoding scales it (the mask rendering had multiplied the raw int16 samples), and a
    # batch of one is its item (the decoder rendering had returned one sample)
    pcm = np.round(np.clip(x, -1, 32767 / 32768) * 32768).astype(np.int16)
    for render in ("mask", "decoder"):
        np.testing.assert_allclose(enh.enhance(tok, pcm, render), enh.enhance(tok, pcm / 32768.0, render), atol=1e-5)
        np.testing.assert_allclose(enh.enhance(tok, x[None], render), enh.enhance(tok, x, render), atol=1e-6)
    with pytest.raises(ValueError, match=r"one mono signal \(T,\), got shape \(2, 16000\)"):
        enh.enhance(tok, np.stack([x, x]))
    # so the stage's validation of an untrained enhancer scores the codec's own resynthesis of the noisy input as a
    # gain on it, as `dashtok enhance` renders it
    from dashtok.train.enhance_stage import validate

    noisy = x + 0.05 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    rendered = tok.decode(tok.encode(noisy).latents).audio[0][: len(x)]
    expected = metrics.speech_scores(x, masked_by(rendered, torch.from_numpy(noisy), MASK_FLOOR, *MASK_GRID).numpy())
    scores = validate(enh, tok, [(noisy, x)])
    assert set(scores) == set(expected) and all(scores[k] == pytest.approx(expected[k], abs=2e-3) for k in scores)


def test_a_mask_keeps_what_the_estimate_keeps_and_adds_nothing() -> None:
    x = torch.from_numpy(speechlike(0.5))
    noise = torch.from_numpy(0.3 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32))
    np.testing.assert_allclose(masked_by(x, x, 0.0, 512, 128), x, atol=1e-5)  # estimate == input: unchanged
    np.testing.assert_allclose(masked_by(2 * x, x, 0.0, 512, 128), x, atol=1e-5)  # the gain stops at 1
    np.testing.assert_allclose(masked_by(0 * x, x, 0.2, 512, 128), 0.2 * x, atol=1e-5)  # and at the floor
    np.testing.assert_allclose(masked_by(0.5 * x, -x, 0.0, 512, 128), -0.5 * x, atol=1e-5)  # the input's phase
    # the clean part of a mixture as the estimate: most of the noise goes
    y = masked_by(x, x + noise, 0.0, 512, 128)
    assert float((y - x).norm()) < 0.5 * float(noise.norm())
    short = x[:100]  # shorter than one window
    np.testing.assert_allclose(masked_by(short, short, 0.0, 512, 128), short, atol=1e-5)
    broken = x.clone()
    broken[1000] = float("nan")  # a non-finite estimate: the floor's gain where it is, the input elsewhere
    y = masked_by(broken, x, 0.2, 512, 128)
    assert torch.isfinite(y).all()
    np.testing.assert_allclose(y[4000:], x[4000:], atol=1e-5)
    with pytest.raises(ValueError, match="two 1-D signals of one length"):
        masked_by(x, x[:-1], 0.0, 512, 128)
    with pytest.raises(ValueError, match="floor must be in"):
        masked_by(x, x, 1.5, 512, 128)


def test_wiener_baseline_improves_white_noise() -> None:
    rng = np.random.default_rng(0)
    clean = np.concatenate([np.zeros(8000, np.float32), speechlike(3.0), np.zeros(8000, np.float32)])
    noise = rng.standard_normal(len(clean)).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (5 / 10))
    noisy = clean + noise
    assert float(metrics.si_sdr(clean, wiener_baseline(noisy))[0]) > float(metrics.si_sdr(clean, noisy)[0]) + 2


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="audio tools missing")
def test_enhance_stage_cli_and_report(tmp_path: Path, tiny_ckpt: Path) -> None:
    from dashtok.data.build import build
    from dashtok.data.mixtures import SNRS_DB, draw_mixtures
    from dashtok.train.config import TrainConfig
    from dashtok.train.loop import train

    corpus = tmp_path / "corpus"
    build(corpus, preset="tiny", seed=0, log=False)
    # drawn mixtures: seeded, clean speech plus noise at one of the corpus's SNRs
    drawn = list(draw_mixtures(corpus / "train.jsonl", 6, seed=3))
    again = list(draw_mixtures(corpus / "train.jsonl", 6, seed=3))
    for (noisy, clean), (noisy2, clean2) in zip(drawn, again, strict=True):
        np.testing.assert_array_equal(noisy, noisy2)
        np.testing.assert_array_equal(clean, clean2)
        snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))
        assert min(abs(snr - s) for s in SNRS_DB) < 0.05 and np.abs(noisy).max() <= 0.99
    cfg = TrainConfig.from_dict({
        "stage": "enhance", "out": str(tmp_path / "run"), "steps": 4, "batch_size": 2, "lr": 1e-3, "warmup": 1,
        "log_every": 1, "save_every": 2, "eval_every": 2,
        "data": {"manifests": [str(corpus / "train.jsonl")], "valid_manifests": [str(corpus / "test.jsonl")],
                 "max_valid_clips": 100},
        "enhance": {"tokenizer": str(tiny_ckpt), "dim": 16, "depth": 1, "heads": 2, "segment_frames": 20,
                    "extra_mixtures": 3}})
    path = train(cfg)
    record = LatentEnhancer.load(path).training_record
    assert record["steps"] == 4 and record["pairs"] == record["corpus_pairs"] + 3
    # the validation curve: enhanced mixtures scored every eval_every steps, the noisy input's scores beside them
    import csv

    from dashtok.data.manifest import mixture_pairs
    from dashtok.data.mixtures import load_pairs

    with (tmp_path / "run" / "eval.csv").open() as f:
        curve = list(csv.DictReader(f))
    assert [r["step"] for r in curve] == ["2", "4"]
    assert all(np.isfinite(float(r[k])) for r in curve for k in ("pesq_wb", "stoi", "input/pesq_wb", "input/stoi"))
    pairs = load_pairs(mixture_pairs((str(corpus / "test.jsonl"),)))  # all of them (max_valid_clips 100)
    noisy_stoi = np.mean([metrics.speech_scores(clean, noisy)["stoi"] for noisy, clean in pairs])
    assert float(curve[0]["input/stoi"]) == pytest.approx(noisy_stoi, abs=1e-4)
    # and validating leaves training as it was: the same run without it ends on the same weights, bit for bit
    from dataclasses import replace

    unvalidated = train(replace(cfg, out=str(tmp_path / "run2"), data=replace(cfg.data, valid_manifests=())))
    trained, plain = LatentEnhancer.load(path).state_dict(), LatentEnhancer.load(unvalidated).state_dict()
    assert all(torch.equal(trained[k], plain[k]) for k in trained)
    # max_minutes stops it with a checkpoint; the same command ends on the same weights, each validation row once
    from conftest import ticking_clock

    stopped = replace(cfg, out=str(tmp_path / "stopped"), save_every=100, data=replace(cfg.data, max_valid_clips=2))
    with ticking_clock():  # 20 s a clock reading: a minute in a few steps
        checkpoint = train(replace(stopped, max_minutes=1.0))
    assert checkpoint.name.startswith("step-") and 0 < int(checkpoint.name.removeprefix("step-")) < 4
    continued = LatentEnhancer.load(train(stopped)).state_dict()
    assert all(torch.equal(trained[k], continued[k]) for k in trained)
    with (tmp_path / "stopped" / "eval.csv").open() as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["2", "4"]
    wav = tmp_path / "noisy.wav"
    sf.write(wav, speechlike(1.3) + 0.05 * np.random.default_rng(0).standard_normal(20800), 16000)
    assert main(["enhance", str(wav), "-e", str(path), "-c", str(tiny_ckpt), "-o", str(tmp_path / "out.wav")]) == 0
    assert sf.info(tmp_path / "out.wav").frames == 20800
    assert main(["enhance", str(wav), "-e", str(path), "-c", str(tiny_ckpt), "-o", str(tmp_path / "own.wav"),
                 "--render", "decoder"]) == 0  # the decoding itself: another rendering of the same latents
    decoded, noisy = sf.read(tmp_path / "own.wav")[0], sf.read(wav)[0]
    expected = masked_by(torch.from_numpy(decoded).float(), torch.from_numpy(noisy).float(), MASK_FLOOR, *MASK_GRID)
    np.testing.assert_allclose(sf.read(tmp_path / "out.wav")[0], expected.numpy(), atol=2e-4)  # 16-bit files
    out = tmp_path / "se"
    assert main(["eval", "se", str(corpus), "-e", str(path), "-c", str(tiny_ckpt), "-o", str(out),
                 "--max-per-group", "2"]) == 0
    report = json.loads((out / "se.json").read_text())
    real = report["groups"]["real speech + noise"]
    assert set(real) == {"noisy", "wiener", "dashtok", "dashtok, decoder", "resynth noisy", "resynth clean"}
    assert real["noisy"]["si_sdr"]["n"] == 2
    bands = report["by_snr"]["real speech + noise"]  # the same mixtures by SNR band, every system
    assert sum(b["noisy"]["stoi"]["n"] for b in bands.values()) == 2
    assert all(band.endswith(" dB") and float(band.split()[0]) in SNRS_DB for band in bands)
    assert "Per SNR band" in (out / "se.md").read_text()
    with pytest.raises(SystemExit):  # another tokenizer's enhancer is refused
        main(["enhance", str(wav), "-e", str(path), "-o", str(tmp_path / "x.wav")])


def test_the_enhancer_learns_from_what_is_heard(tmp_path: Path, tiny_ckpt: Path) -> None:
    """enhance.loss_weights with "mel/l1" / "stft/l1" alone: the enhanced latents decoded by the frozen tokenizer
    against the clean audio; the gradient reaches the enhancer through the decoder (its zero-initialised output
    layer moves) and every term is logged."""
    import csv
    from dataclasses import replace

    from dashtok.train.config import TrainConfig
    from dashtok.train.loop import train

    manifest = _mixture_manifest(tmp_path, 3)
    cfg = TrainConfig.from_dict({
        "stage": "enhance", "out": str(tmp_path / "run"), "steps": 3, "batch_size": 2, "lr": 1e-3, "warmup": 1,
        "log_every": 1, "save_every": 3, "data": {"manifests": [str(manifest)]},
        "enhance": {"tokenizer": str(tiny_ckpt), "dim": 16, "depth": 1, "heads": 2, "segment_frames": 25,
                    "loss_weights": {"mel/l1": 1.0, "stft/l1": 1.0}}})
    enhancer = LatentEnhancer.load(train(cfg))
    assert float(enhancer.out.weight.detach().abs().max()) > 0  # moved by the audio losses alone
    with (tmp_path / "run" / "metrics.csv").open() as f:
        logged = list(csv.DictReader(f))
    assert len(logged) == 3 and all(np.isfinite(float(r[k])) for r in logged
                                    for k in ("enhance/loss", "enhance/mse", "mel/l1", "stft/l1"))
    total = [float(r["enhance/loss"]) for r in logged]
    parts = [float(r["mel/l1"]) + float(r["stft/l1"]) for r in logged]
    np.testing.assert_allclose(total, parts, rtol=1e-4)  # the weighted sum of the logged terms
    # bf16 autocast (enhance.autocast): the enhancer and the decoder's blocks in bf16, the iSTFT and losses float32;
    # the first step sees the same batch, so its losses are the float32 ones within bf16's precision
    train(replace(cfg, out=str(tmp_path / "bf16"), steps=1, enhance=replace(cfg.enhance, autocast="bf16")))
    with (tmp_path / "bf16" / "metrics.csv").open() as f:
        first = next(csv.DictReader(f))
    for k in ("enhance/mse", "mel/l1", "stft/l1"):
        assert float(first[k]) == pytest.approx(float(logged[0][k]), rel=0.03)
    assert first["enhance/loss"] != logged[0]["enhance/loss"]
    with pytest.raises(ValueError, match="enhance.loss_weights"):
        TrainConfig.from_dict({"stage": "enhance", "out": "x", "enhance": {"loss_weights": {"adv/gen": 1.0}}})
    with pytest.raises(ValueError, match="enhance.autocast"):
        TrainConfig.from_dict({"stage": "enhance", "out": "x", "enhance": {"autocast": "fp16"}})


def test_the_flow_enhancer_learns_a_conditional_map_and_saves_as_itself(tmp_path: Path) -> None:
    """The generative kind: flow matching of clean latents given noisy ones. On a toy map (clean = 0.5 * noisy + 1)
    a few hundred steps bring its sampled estimate far closer to the clean latents than the noisy input is (the error
    ratio reached is 0.003 on AVX-512 and AVX2 kernels alike; the bound is 0.1); sampling is a function of the seed;
    save == load."""
    torch.manual_seed(0)
    cfg = EnhancerConfig(latent_dim=8, dim=32, depth=1, heads=2, kind="flow", sample_steps=8)
    enh = LatentEnhancer(cfg, Tie("toy@0"))
    opt = torch.optim.Adam(enh.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(16, 10, dtype=torch.bool)
    for _ in range(300):
        noisy = torch.randn(16, 10, 8, generator=gen)
        loss, estimate = enh.loss(noisy, 0.5 * noisy + 1, mask, gen)
        assert estimate is None  # a flow enhancer has no one-pass estimate
        opt.zero_grad()
        loss.backward()
        opt.step()
    enh.eval()
    noisy = torch.randn(4, 10, 8, generator=torch.Generator().manual_seed(1))
    clean = 0.5 * noisy + 1
    out = enh.clean_latents(noisy, seed=3)
    assert float((out - clean).square().mean()) < 0.1 * float((noisy - clean).square().mean())
    torch.testing.assert_close(enh.clean_latents(noisy, seed=3), out, rtol=0, atol=0)
    other = enh.clean_latents(noisy, seed=4)  # another seed, another draw: close to the map, not the same numbers
    assert not torch.equal(other, out) and float((other - clean).square().mean()) < 0.1 * float(
        (noisy - clean).square().mean())
    with pytest.raises(ValueError, match="x_t and time t"):
        enh(noisy)
    enh.save(tmp_path / "flow.safetensors")
    back = LatentEnhancer.load(tmp_path / "flow.safetensors")
    assert back.config == cfg
    torch.testing.assert_close(back.clean_latents(noisy, seed=3), out, rtol=0, atol=0)


def test_the_enhance_stage_trains_a_flow_enhancer(tmp_path: Path, tiny_ckpt: Path) -> None:
    """enhance.kind = "flow": its own loss alone ("enhance/flow", logged), a checkpoint of that kind that enhances
    audio end to end; the regression's losses are refused with it, in a line that says what to set."""
    import csv

    from dashtok.train.config import TrainConfig
    from dashtok.train.loop import train

    manifest = _mixture_manifest(tmp_path, 2)
    raw = {"stage": "enhance", "out": str(tmp_path / "run"), "steps": 3, "batch_size": 2, "lr": 1e-3, "warmup": 1,
           "log_every": 1, "save_every": 3, "data": {"manifests": [str(manifest)]},
           "enhance": {"tokenizer": str(tiny_ckpt), "dim": 16, "depth": 1, "heads": 2, "segment_frames": 25,
                       "kind": "flow", "sample_steps": 2}}
    with pytest.raises(ValueError, match='enhance.loss_weights = {"enhance/flow" = 1.0}'):
        TrainConfig.from_dict(raw)
    with pytest.raises(ValueError, match="enhance.kind must be 'regression' or 'flow', not 'diffusion'"):
        TrainConfig.from_dict({**raw, "enhance": {**raw["enhance"], "kind": "diffusion"}})  # type: ignore[dict-item]
    raw["enhance"]["loss_weights"] = {"enhance/flow": 1.0}  # type: ignore[index]
    enhancer = LatentEnhancer.load(train(TrainConfig.from_dict(raw)))
    assert enhancer.config.kind == "flow" and enhancer.config.sample_steps == 2
    with (tmp_path / "run" / "metrics.csv").open() as f:
        logged = list(csv.DictReader(f))
    assert len(logged) == 3 and all(np.isfinite(float(r["enhance/flow"])) for r in logged)
    tok = Tokenizer.load(tiny_ckpt)
    x = speechlike(1.0)
    y = enhancer.enhance(tok, x)
    assert y.shape == x.shape and np.isfinite(y).all()
    np.testing.assert_array_equal(enhancer.enhance(tok, x), y)  # seeded: enhancing twice gives the same audio


def test_the_regression_loss_is_the_masked_mse_and_draws_nothing() -> None:
    """The regression's training objective is the MSE of the one-pass estimate over the valid frames, exactly (the
    formula the bundled enhancers were trained with), and it takes nothing from the batch generator: the crops that
    follow it in a run stay the same."""
    torch.manual_seed(0)
    enh = LatentEnhancer(EnhancerConfig(latent_dim=8, dim=16, depth=1, heads=2), Tie("toy@0"))
    torch.nn.init.normal_(enh.out.weight, std=0.1)  # not the identity, so the MSE is not just that of the input
    x, y = torch.randn(3, 7, 8), torch.randn(3, 7, 8)
    mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2, [True] * 2 + [False] * 5])
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    loss, estimate = enh.loss(x, y, mask, gen)
    assert torch.equal(gen.get_state(), state)
    enhanced = enh(x, mask)
    assert estimate is not None and torch.equal(estimate, enhanced)
    expected = ((enhanced - y).square().mean(-1) * mask).sum() / mask.sum()
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
