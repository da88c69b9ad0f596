"""The mel-VAE baseline: shapes like the tokenizer's, KL as a divergence, training learns, save == load, and the
generation stack takes it in place of a tokenizer."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import speechlike, ticking_clock
from dashtok.baselines.vae import MelVAE, VAEConfig, kl_divergence, load_codec
from dashtok.config import DecoderConfig
from dashtok.train.config import TrainConfig
from dashtok.train.loop import train


def tiny_vae() -> MelVAE:
    torch.manual_seed(0)
    return MelVAE(VAEConfig(latent_dim=16, encoder_dim=32, encoder_blocks=1, decoder=DecoderConfig.preset("tiny")))


def test_latent_shape_and_frame_rate_match_the_tokenizer() -> None:
    vae = tiny_vae().eval()
    for n in (480, 15999, 16000, 40000):
        enc = vae.encode(speechlike(3.0)[:n])
        assert enc.latents.shape == (1, vae.config.num_frames(n), 16)
    assert (vae.frame_rate, vae.hop_length) == (25.0, 640)
    assert vae.decode(torch.zeros(2, 10, 16)).audio.shape == (2, 6400)


def test_kl_is_zero_at_the_prior_and_positive_elsewhere() -> None:
    mask = torch.ones(1, 5)
    assert float(kl_divergence(torch.zeros(1, 5, 4), torch.zeros(1, 5, 4), mask)) == 0.0
    assert float(kl_divergence(torch.ones(1, 5, 4), torch.zeros(1, 5, 4), mask)) == pytest.approx(2.0)  # 4 x 1/2


def test_save_load_round_trip_and_codec_dispatch(tmp_path: Path) -> None:
    vae = tiny_vae().eval()
    vae.latent_mean.fill_(0.5)
    vae.save(tmp_path / "v.safetensors", training={"trained": True})
    back = load_codec(tmp_path / "v.safetensors")
    assert isinstance(back, MelVAE) and back.model_id == vae.model_id and "@unsaved" not in back.model_id
    x = speechlike(1.0)
    torch.testing.assert_close(back.encode(x).latents, vae.encode(x).latents, rtol=0, atol=0)
    assert torch.equal(back.latent_mean, vae.latent_mean)


def test_vae_stage_learns_and_exports(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(3):
        sf.write(audio / f"{i}.wav", speechlike(2.0 + i, seed=i), 16000)
    cfg = TrainConfig.from_dict({
        "stage": "vae", "out": str(tmp_path / "run"), "steps": 40, "batch_size": 4, "lr": 2e-3, "warmup": 1,
        "log_every": 1, "save_every": 20, "eval_every": 1000, "threads": 1, "data": {"folders": [str(audio)]},
        "vae": {"latent_dim": 16, "encoder_dim": 32, "encoder_blocks": 1, "decoder_preset": "tiny",
                "segment_frames": 8}})
    path = train(cfg)
    import csv

    with (tmp_path / "run" / "metrics.csv").open() as f:
        mel = [float(r["mel/l1"]) for r in csv.DictReader(f)]
    assert all(np.isfinite(mel)) and np.mean(mel[-5:]) < 0.8 * np.mean(mel[:5])
    vae = load_codec(path)
    assert isinstance(vae, MelVAE) and vae.training_record["steps"] == 40
    assert float(vae.latent_std.min()) > 0 and not torch.equal(vae.latent_mean, torch.zeros(16))


def test_vae_stage_stopped_by_max_minutes_continues_to_the_same_weights(tmp_path: Path) -> None:
    from dataclasses import replace

    from safetensors.torch import load_file

    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "0.wav", speechlike(2.0, seed=0), 16000)
    cfg = TrainConfig.from_dict({
        "stage": "vae", "out": str(tmp_path / "straight"), "steps": 5, "batch_size": 2, "lr": 2e-3, "warmup": 1,
        "log_every": 1, "save_every": 100, "threads": 1, "data": {"folders": [str(audio)]},
        "vae": {"latent_dim": 16, "encoder_dim": 32, "encoder_blocks": 1, "decoder_preset": "tiny",
                "segment_frames": 8}})
    straight = train(cfg)
    stopped = replace(cfg, out=str(tmp_path / "stopped"))
    with ticking_clock():  # 20 s a clock reading: a minute in 2-3 steps
        checkpoint = train(replace(stopped, max_minutes=1.0))
    assert checkpoint.name.startswith("step-") and (checkpoint / "train_state.pt").is_file()
    assert 0 < int(checkpoint.name.removeprefix("step-")) < 5
    assert not (tmp_path / "stopped" / "vae.safetensors").exists()
    a, b = load_file(str(straight)), load_file(str(train(stopped)))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
