"""Training smoke tests: finite, decreasing losses; only injection + decoder learn; resume is bit-for-bit; two
DDP processes (gloo, CPU) stay in agreement. The tokenizer runs use the GAN-step levers (cropped discriminator
windows, bf16 autocast, reused real features, frozen discriminators in the generator pass), so these pins hold
for them too."""

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from conftest import speechlike
from dashtok import Tokenizer
from dashtok.checkpoint import load_encoder
from dashtok.train.config import TrainConfig
from dashtok.train.data import AudioBank, sampling_weights, weighted_crops
from dashtok.train.loop import train


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("audio")
    for i in range(4):
        sf.write(d / f"clip{i}.wav", speechlike(3.0 + i, seed=i), 16000)
    return d


def config(out: Path, audio: Path, stage: str, **changes: object) -> TrainConfig:
    d: dict[str, object] = {
        "stage": stage, "out": str(out), "steps": 4, "batch_size": 2, "lr": 1e-3, "warmup": 1, "log_every": 1,
        "save_every": 2, "eval_every": 1000, "threads": 1, "data": {"folders": [str(audio)]},
        "mae": {"encoder_preset": "tiny", "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2},
        # the discriminators judge a random 0.16 s window of each 0.32 s segment, in bf16 (the default levers)
        "tokenizer": {"decoder_preset": "tiny", "segment_frames": 8, "gan_start": 2, "name": "dashtok-test",
                      "disc_crop_seconds": 0.16, "autocast": "bf16"},
    }
    for key, value in changes.items():
        if isinstance(value, dict):
            d[key] = {**d[key], **value}  # type: ignore[dict-item]
        else:
            d[key] = value
    return TrainConfig.from_dict(d)


def losses(out: Path, key: str) -> list[float]:
    import csv

    with (out / "metrics.csv").open() as f:
        return [float(row[key]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def mae_run(tmp_path_factory: pytest.TempPathFactory, audio_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("mae")
    train(config(out, audio_dir, "mae", steps=30, lr=2e-3, save_every=30))
    return out


def test_mae_pretraining_learns(mae_run: Path) -> None:
    curve = losses(mae_run, "mae/loss")
    assert len(curve) == 30 and all(torch.isfinite(torch.tensor(curve)))
    assert sum(curve[-5:]) / 5 < 0.9 * sum(curve[:5]) / 5
    encoder = load_encoder(mae_run / "encoder.safetensors")
    assert encoder.config.embed_dim == 32
    bn = encoder.init_bn[1]
    assert isinstance(bn, torch.nn.BatchNorm2d) and bn.running_mean is not None
    assert not torch.equal(bn.running_mean, torch.zeros(64))  # BatchNorm statistics were learned


def test_tokenizer_stage_trains_only_injection_and_decoder(tmp_path: Path, audio_dir: Path, mae_run: Path) -> None:
    cfg = config(tmp_path, audio_dir, "tokenizer", steps=24, save_every=24,
                 tokenizer={"init": str(mae_run), "gan_start": 20})
    model_path = train(cfg)
    mel = losses(tmp_path, "mel/l1")
    disc = losses(tmp_path, "adv/disc")
    assert all(torch.isfinite(torch.tensor(mel))) and all(torch.isfinite(torch.tensor(disc[20:])))
    assert all(torch.isnan(torch.tensor(disc[:20])))  # mel-only phase
    assert sum(mel[-4:]) / 4 < sum(mel[:4]) / 4
    trained = Tokenizer.load(model_path)
    assert trained.training_record["trained"] is True and trained.training_record["steps"] == 24
    encoder = load_encoder(mae_run / "encoder.safetensors")
    for key, value in encoder.state_dict().items():
        assert torch.equal(trained.encoder.state_dict()[key], value), key  # frozen
    assert trained.latent_std.min() > 0 and not torch.equal(trained.latent_mean, torch.zeros(32))
    # A shipped tokenizer checkpoint can seed the next run: its encoder, and with warm_start its decoder too.
    warm = config(tmp_path / "warm", audio_dir, "tokenizer", steps=0,
                  tokenizer={"init": str(model_path), "warm_start": True})
    from dashtok.train.tokenizer_stage import build_tokenizer

    rebuilt = build_tokenizer(warm)
    for key, value in trained.state_dict().items():
        if not key.startswith("latent_"):
            assert torch.equal(rebuilt.state_dict()[key], value), key


def test_a_frozen_injection_fine_tunes_the_decoder_and_keeps_the_latents(tmp_path: Path, audio_dir: Path,
                                                                       mae_run: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``tokenizer.freeze_injection``: a fine-tune from a tokenizer trains its decoder only, so the new model's
    latents (and their statistics) are the old one's, bit for bit, and what was encoded with it decodes with it."""
    from dashtok.cli import main

    start = train(config(tmp_path / "start", audio_dir, "tokenizer", tokenizer={"init": str(mae_run)}))
    tok = {"init": str(start), "warm_start": True, "freeze_injection": True, "ema_decay": 0.9}
    tuned_cfg = config(tmp_path / "tuned", audio_dir, "tokenizer", tokenizer=tok)
    old, new = Tokenizer.load(start), Tokenizer.load(train(tuned_cfg))
    assert "injection frozen" in capsys.readouterr().out
    old_state, new_state = old.state_dict(), new.state_dict()
    for key, value in old_state.items():
        same = torch.equal(new_state[key], value)
        assert same == (not key.startswith(("decoder.", "head."))), key  # everything but the decoder is the start's
    wav = torch.from_numpy(speechlike(2.0, seed=9)).float()[None]
    latents = old.encode(wav).latents
    assert torch.equal(new.encode(wav).latents, latents)
    # so it has the start's latent id (another model id): stored latents, generators and enhancers carry over
    from dashtok.generate.tied import Tie

    assert new.latent_id == old.latent_id and new.model_id != old.model_id
    assert Tie.to(old).admits(new) and not Tie(old.model_id).admits(new)  # files without a latent id: model id
    assert torch.isfinite(new.decode(latents).audio).all()
    toml = str(_toml(tuned_cfg, tmp_path / "tuned.toml"))
    packed = tmp_path / "p.safetensors"
    assert main(["train", toml, "--pack", str(packed), "--stats"]) == 2
    assert "tuned is frozen" in capsys.readouterr().err
    # packed and carried on in another folder (--resume-from), the latents and their statistics still stay
    assert main(["train", toml, "--pack", str(packed)]) == 0
    carried = config(tmp_path / "carried", audio_dir, "tokenizer", steps=6, tokenizer=tok)
    assert main(["train", str(_toml(carried, tmp_path / "carried.toml")), "--resume-from", str(packed)]) == 0
    further = Tokenizer.load(tmp_path / "carried" / "model.safetensors")
    assert torch.equal(further.encode(wav).latents, latents)
    assert torch.equal(further.latent_mean, old.latent_mean) and torch.equal(further.latent_std, old.latent_std)
    assert not torch.equal(further.state_dict()["head.out.weight"], new_state["head.out.weight"])
    # packed by a command that does not repeat the run's settings, the record keeps what trained it, and --stats
    # still sees the frozen injection
    plain = _toml(config(tmp_path / "carried", audio_dir, "tokenizer", steps=6, tokenizer={"init": str(mae_run)}),
                  tmp_path / "plain.toml")
    assert main(["train", str(plain), "--pack", str(tmp_path / "q.safetensors")]) == 0
    record = Tokenizer.load(tmp_path / "q.safetensors").training_record
    assert record["config"]["tokenizer"]["freeze_injection"] is True and record["steps"] == 6
    assert main(["train", str(plain), "--pack", str(tmp_path / "q.safetensors"), "--stats"]) == 2
    with pytest.raises(ValueError, match="no injection to freeze"):
        config(tmp_path, audio_dir, "tokenizer", tokenizer={"injection": False, "freeze_injection": True})
    with pytest.raises(ValueError, match="start from a trained tokenizer"):  # a new injection is nothing to keep
        train(config(tmp_path / "fresh", audio_dir, "tokenizer", tokenizer={"init": str(mae_run),
                                                                            "freeze_injection": True}))
    # a packed file without latent statistics cannot start a frozen run: it would keep the neutral 0 / 1
    first = config(tmp_path / "unfrozen", audio_dir, "tokenizer", tokenizer={"init": str(mae_run)})
    train(first)
    raw = str(tmp_path / "raw.safetensors")
    assert main(["train", str(_toml(first, tmp_path / "unfrozen.toml")), "--pack", raw]) == 0
    frozen = config(tmp_path / "frozen", audio_dir, "tokenizer", steps=6,
                    tokenizer={"init": str(mae_run), "freeze_injection": True})
    capsys.readouterr()
    assert main(["train", str(_toml(frozen, tmp_path / "frozen.toml")), "--resume-from", raw]) == 2
    assert "never measured" in capsys.readouterr().err


def test_resume_after_kill_is_bit_for_bit(tmp_path: Path, audio_dir: Path, mae_run: Path) -> None:
    # with the long run's additions: the weights' moving average, the STFT loss, a raised magnitude cap, the
    # complex-spectrum discriminators with wider period ones, and the discriminators' own learning rate
    init = {"init": str(mae_run), "gan_start": 2, "ema_decay": 0.5, "decoder_overrides": {"max_magnitude": 1000.0},
            "loss_weights": {"mel/l1": 45.0, "stft/l1": 10.0, "adv/gen": 1.0, "adv/feat": 64.0, "phase/gd": 1.0,
                             "phase/if": 1.0, "head/consistency": 1.0}, "phase_resolution": [512, 128],
            "disc_complex": True, "disc_period_channels": 32, "disc_lr": 1e-3,
            # and the two options its A/B runs tried: crops at other input levels, a faster phase
            "gain_db": [-20.0], "phase_lr_scale": 4.0}
    straight = tmp_path / "straight"
    train(config(straight, audio_dir, "tokenizer", steps=4, tokenizer=init))
    resumed = tmp_path / "resumed"
    train(config(resumed, audio_dir, "tokenizer", steps=2, tokenizer=init))  # "killed" after its step-2 save
    (resumed / "model.safetensors").unlink()
    train(config(resumed, audio_dir, "tokenizer", steps=4, tokenizer=init))
    a = load_file(str(straight / "checkpoints" / "step-0000004" / "model.safetensors"))
    b = load_file(str(resumed / "checkpoints" / "step-0000004" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for name in ("disc", "ema"):
        da = load_file(str(straight / "checkpoints" / "step-0000004" / f"{name}.safetensors"))
        db = load_file(str(resumed / "checkpoints" / "step-0000004" / f"{name}.safetensors"))
        assert da.keys() == db.keys() and all(torch.equal(da[k], db[k]) for k in da), name
    assert all(v > 0 for v in losses(straight, "stft/l1"))  # logged and finite
    assert all(0 < v < np.pi for key in ("phase/gd", "phase/if") for v in losses(straight, key))
    assert all(v > 0 for v in losses(straight, "head/consistency"))
    # the exported model is the average, not the last step's weights, and has the raised cap
    shipped = Tokenizer.load(straight / "model.safetensors")
    ema = load_file(str(straight / "checkpoints" / "step-0000004" / "ema.safetensors"))
    last = load_file(str(straight / "checkpoints" / "step-0000004" / "model.safetensors"))
    key = next(k for k in last if k.startswith("decoder.") and k.endswith("weight"))
    assert torch.equal(shipped.state_dict()[key], ema[key]) and not torch.equal(ema[key], last[key])
    assert shipped.config.decoder.max_magnitude == 1000.0
    assert shipped.training_record["weights"] == "exponential moving average"


def test_max_minutes_stops_with_a_checkpoint_and_the_same_command_continues(
        tmp_path: Path, audio_dir: Path, mae_run: Path) -> None:
    """max_minutes: past the budget the run saves the step it reached and exits without exporting; starting it
    again continues to the same weights as the run that never stopped."""
    from conftest import ticking_clock

    init = {"init": str(mae_run), "gan_start": 2, "ema_decay": 0.5}
    straight = tmp_path / "straight"
    train(config(straight, audio_dir, "tokenizer", steps=5, tokenizer=init))
    stopped = tmp_path / "stopped"
    with ticking_clock():  # 20 s a clock reading
        train(config(stopped, audio_dir, "tokenizer", steps=5, save_every=100, max_minutes=1.0, tokenizer=init))
    saved = sorted(p.name for p in (stopped / "checkpoints").glob("step-*"))
    assert len(saved) == 1 and 0 < int(saved[0].removeprefix("step-")) < 5, saved  # a step of its own, not a save
    assert not (stopped / "model.safetensors").exists()
    train(config(stopped, audio_dir, "tokenizer", steps=5, save_every=100, tokenizer=init))
    for name in ("model", "ema", "disc"):
        a = load_file(str(straight / "checkpoints" / "step-0000005" / f"{name}.safetensors"))
        b = load_file(str(stopped / "checkpoints" / "step-0000005" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    with pytest.raises(ValueError, match="max_minutes"):
        TrainConfig.from_dict({"stage": "tokenizer", "out": "unused", "max_minutes": -1})


def test_autocast_auto_is_bf16_only_where_bf16_runs_in_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from dashtok.train.tokenizer_stage import training_autocast

    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
        assert training_autocast("auto", cpu) == ("bf16" if native else "fp32")
        assert training_autocast("bf16", cpu) == "bf16" and training_autocast("fp32", cpu) == "fp32"  # as asked
    assert TrainConfig.from_dict({"stage": "tokenizer", "out": "unused"}).tokenizer.autocast == "auto"
    with pytest.raises(ValueError, match="autocast"):
        TrainConfig.from_dict({"stage": "tokenizer", "out": "unused", "tokenizer": {"autocast": "fp16"}})
    # the stage's pieces take "auto" as it comes, resolved where they run (here: the probes' answer is restored)
    monkeypatch.undo()
    from conftest import make_tiny
    from dashtok.train.tokenizer_stage import Generator

    model = make_tiny(0).eval()
    with torch.no_grad():
        f = model.features(torch.from_numpy(speechlike(1.0, seed=0))[None])
        resolved = Generator(model, training_autocast("auto", cpu))(f.semantic, f.patches)
        auto = Generator(model, "auto")(f.semantic, f.patches)
        assert all(torch.equal(a, b) for a, b in zip(auto, resolved, strict=True))
    assert TrainConfig.from_dict({"stage": "mae", "out": "unused", "max_minutes": 5}).max_minutes == 5  # any stage
    with pytest.raises(ValueError, match="extra_mixtures must be >= 0"):
        TrainConfig.from_dict({"stage": "enhance", "out": "unused", "enhance": {"extra_mixtures": -1}})
    with pytest.raises(ValueError, match="data.manifests, which is empty"):
        TrainConfig.from_dict({"stage": "enhance", "out": "unused", "enhance": {"extra_mixtures": 10}})


def test_ema_is_the_exponential_average_of_the_trained_weights() -> None:
    from dashtok.train.run import EMA

    net = torch.nn.Linear(3, 2)
    net.bias.requires_grad_(False)  # frozen weights are not averaged
    ema = EMA(net, 0.9)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
        net.bias.add_(1.0)
    ema.update(10_000)  # late in a run: the full decay
    assert torch.allclose(ema.module.weight, start + 0.1)
    ema.update(0)  # the first update: decay 1/10, the average moves 90 % of the way
    assert torch.allclose(ema.module.weight, start + 0.1 + 0.9 * 0.9)
    assert not torch.equal(ema.module.bias, net.bias)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_stft_loss_sees_a_tone_the_mel_loss_barely_sees() -> None:
    from dashtok.train.losses import mel_loss, stft_loss

    x = torch.from_numpy(speechlike(2.0, seed=3)).float()[None]
    t = torch.arange(x.shape[1]) / 16000
    y = x + 0.003 * torch.sin(2 * torch.pi * 7773 * t)  # a faint stationary tone near the top of the band
    res = ((1280, 320), (512, 128), (128, 32))
    assert float(stft_loss(x, x, res)) == 0.0
    assert float(stft_loss(x, y, res)) > 1.5 * float(mel_loss(x, y))


def test_phase_losses_see_the_phase_structure_not_a_global_rotation() -> None:
    """The Hilbert transform of a signal (every component rotated by a quarter turn) costs the instantaneous phase
    pi / 2 and the group delay and instantaneous frequency almost nothing; identical signals cost nothing; a silent
    fake passes finite gradients."""
    from scipy.signal import hilbert

    from dashtok.train.losses import phase_losses

    x = speechlike(2.0, seed=3).astype(np.float64)
    real = torch.from_numpy(x).float()[None]
    rotated = torch.from_numpy(np.imag(hilbert(x))).float()[None]
    assert all(float(v) == 0.0 for v in phase_losses(real, real, 1280, 320).values())
    turn = phase_losses(real, rotated, 1280, 320)
    assert abs(float(turn["phase/ip"]) - np.pi / 2) < 0.02
    assert float(turn["phase/gd"]) < 0.05 and float(turn["phase/if"]) < 0.05
    silent = torch.zeros_like(real, requires_grad=True)
    sum(phase_losses(real, silent, 1280, 320).values()).backward()  # type: ignore[union-attr]
    assert silent.grad is not None and torch.isfinite(silent.grad).all()
    with pytest.raises(ValueError, match="phase/gd"):  # the error lists the known terms
        TrainConfig.from_dict({"stage": "tokenizer", "out": "unused", "tokenizer": {"loss_weights": {"phase/x": 1.0}}})


def test_consistency_loss_is_zero_for_a_signal_s_own_spectrum_and_grows_with_a_foreign_phase() -> None:
    """The spectrum of a signal on the head's grid is consistent (the loss is 0 to float32 rounding), the same
    magnitudes with a random phase are not (their overlap-add cancels much of them), and the loss passes finite
    gradients also where the head makes nothing; ``ISTFT.analysis`` inverts the head's overlap-add."""
    from dashtok.spectral import ISTFT
    from dashtok.train.losses import consistency_loss

    istft = ISTFT(1280, 320)
    x = torch.from_numpy(speechlike(2.0, seed=4)).float()[None, : 100 * 320]
    own = istft.analysis(x)  # (1, 641, 100)
    assert own.shape == (1, 641, 100)
    again = istft(own)
    assert torch.allclose(again[:, 1280:-1280], x[:, 1280:-1280], atol=1e-5)  # away from the ends: the signal
    assert float(consistency_loss(own, again)) < 1e-3
    gen = torch.Generator().manual_seed(0)
    foreign = torch.polar(own.abs(), 6.283 * torch.rand(own.shape, generator=gen))
    assert float(consistency_loss(foreign, istft(foreign))) > 100 * float(consistency_loss(own, again))
    silent = torch.zeros_like(own, requires_grad=True)
    consistency_loss(silent, istft(silent)).backward()
    assert silent.grad is not None and torch.isfinite(silent.grad).all()


def test_dc_loss_measures_an_offset_relative_to_the_input_level_and_not_the_content() -> None:
    """An output equal to the input costs nothing; a constant offset costs it relative to the input's RMS, the same
    at any level (a louder input and offset alike cost the same), and in a batch relative to the batch's RMS (an
    offset on a near-silent item costs what it adds to the batch); a 1 kHz error as large costs almost nothing (it
    averages out within the window); a silent output passes finite gradients; the term is a known loss weight."""
    from dashtok.train.losses import dc_loss

    x = torch.from_numpy(speechlike(2.0, seed=5)).float()[None]
    rms = float(x.square().mean().sqrt())
    assert float(dc_loss(x, x, 1280, 320)) == 0.0
    offset = float(dc_loss(x, x + 0.1 * rms, 1280, 320))
    assert offset == pytest.approx(0.1, rel=0.02)
    assert float(dc_loss(4 * x, 4 * (x + 0.1 * rms), 1280, 320)) == pytest.approx(offset, rel=1e-4)
    quiet = torch.cat([x, 1e-3 * x])  # the same offset on the quiet item: its own level would make it 1000x
    both = float(dc_loss(quiet, quiet + 0.1 * rms * torch.tensor([[0.0], [1.0]]), 1280, 320))
    assert both == pytest.approx(0.1 / 2 / float(quiet.square().mean().sqrt() / rms), rel=0.02)
    t = torch.arange(x.shape[1]) / 16000
    assert float(dc_loss(x, x + 0.1 * rms * torch.sin(2 * torch.pi * 1000 * t), 1280, 320)) < 0.01 * offset
    assert float(dc_loss(0 * x, 0 * x + 1e-3, 1280, 320)) == pytest.approx(1.0, rel=0.02)  # floored at -60 dBFS
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        dc_loss(x[0], x[0], 1280, 320)
    silent = torch.zeros_like(x, requires_grad=True)
    dc_loss(x, silent, 1280, 320).backward()
    assert silent.grad is not None and torch.isfinite(silent.grad).all() and float(silent.grad.abs().sum()) > 0
    cfg = TrainConfig.from_dict({"stage": "tokenizer", "out": "unused", "tokenizer": {"loss_weights": {"dc/l1": 1.0}}})
    assert cfg.tokenizer.loss_weights == {"dc/l1": 1.0}


def _ddp_worker(rank: int, world: int, port: int, out: str, audio: str, init: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    cfg = config(Path(out), Path(audio), "tokenizer", steps=3, batch_size=4, save_every=3,
                 tokenizer={"init": init, "gan_start": 1, "disc_complex": True, "ema_decay": 0.5,
                            "gain_db": [-20.0], "phase_lr_scale": 4.0})
    from dashtok.train import loop

    loop.train(cfg)  # closes the process group itself, after a barrier
    assert not torch.distributed.is_initialized()


def test_two_process_ddp_agrees(tmp_path: Path, audio_dir: Path, mae_run: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path), str(audio_dir), str(mae_run)), nprocs=2, join=True)
    state = torch.load(tmp_path / "checkpoints" / "step-0000003" / "train_state.pt", weights_only=False)
    sums = state["rank_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]  # both processes hold the same weights after 3 DDP steps
    assert (tmp_path / "model.safetensors").is_file() and len(losses(tmp_path, "mel/l1")) == 3


def test_webdataset_shards_and_folders_feed_training(tmp_path: Path, audio_dir: Path) -> None:
    import io
    import tarfile

    from dashtok.train.config import DataConfig
    from dashtok.train.data import AudioBank, batch_generator, read_shard

    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for key, sr in (("a", 16000), ("b", 44100)):
            buf = io.BytesIO()
            sf.write(buf, speechlike(1.0, sr=sr), sr, format="FLAC")
            info = tarfile.TarInfo(f"{key}.flac")
            info.size = len(buf.getvalue())
            buf.seek(0)
            tar.addfile(info, buf)
        text = b"a caption"
        info = tarfile.TarInfo("a.txt")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    items = list(read_shard(shard))
    assert [name.split(":")[1] for name, _ in items] == ["a.flac", "b.flac"]
    assert all(abs(len(x) - 16000) <= 1 for _, x in items)
    bank = AudioBank.from_config(DataConfig(folders=(str(audio_dir),), shards=(str(shard),)))
    assert len(bank) == 6
    a = bank.concatenated(16000 * 10, batch_generator(0, 5))
    b = bank.concatenated(16000 * 10, batch_generator(0, 5))
    assert np.array_equal(a, b) and np.abs(a).max() > 0  # batches are a function of (seed, step)


def test_train_cli_records_every_start_with_its_overrides(tmp_path: Path, audio_dir: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from dashtok.cli import main

    toml = tmp_path / "mae.toml"
    toml.write_text(f'stage = "mae"\nout = "{tmp_path / "run"}"\nsteps = 20\nbatch_size = 2\nwarmup = 1\n'
                    f'log_every = 1\nsave_every = 2\nthreads = 1\n[data]\nfolders = ["{audio_dir}"]\n'
                    '[mae]\nencoder_preset = "tiny"\ndecoder_dim = 16\ndecoder_depth = 1\ndecoder_heads = 2\n')
    assert main(["train", str(toml), "--set", "steps=2"]) == 0
    assert main(["train", str(toml), "--set", "steps=4"]) == 0  # resumes at step 2
    run = tmp_path / "run"
    assert (run / "config.toml").read_text() == toml.read_text()  # the file as given
    starts = [json.loads(line) for line in (run / "invocations.jsonl").read_text().splitlines()]
    assert [s["set"] for s in starts] == [["steps=2"], ["steps=4"]]
    assert [s["resolved"]["steps"] for s in starts] == [2, 4]
    assert starts[0]["resolved"]["mae"]["encoder_preset"] == "tiny"
    assert len(losses(run, "mae/loss")) == 4
    capsys.readouterr()
    exported = (run / "encoder.safetensors").stat().st_mtime_ns  # by the run to step 4
    assert main(["train", str(toml), "--set", "steps=8", "max_minutes=0.0001"]) == 0  # 6 ms: stops after a step
    said = capsys.readouterr().out
    assert "mae: stopped at step" in said and "checkpoint to continue from: " in said, said
    assert said.split("checkpoint to continue from: ")[1].strip() == str(run / "checkpoints" / "step-0000005")
    assert (run / "encoder.safetensors").stat().st_mtime_ns == exported  # no export of an unfinished run


def test_training_starts_from_the_official_release_layout(tmp_path: Path, audio_dir: Path) -> None:
    """``tokenizer.init`` = an official directory: its encoder stays frozen, its injection and decoder are the warm
    start and learn (here: the tiny official-layout fixture, a few steps)."""
    official = Path(__file__).parent / "fixtures" / "official_tiny"
    cfg = config(tmp_path, audio_dir, "tokenizer", steps=4, save_every=4,
                 tokenizer={"init": str(official), "warm_start": True, "gan_start": 2, "name": "tuned"})
    model_path = train(cfg)
    assert all(torch.isfinite(torch.tensor(losses(tmp_path, "mel/l1"))))
    start, tuned = Tokenizer.from_pretrained(official), Tokenizer.load(model_path)
    assert tuned.config.decoder == start.config.decoder and tuned.config.name == "tuned"
    a, b = start.state_dict(), tuned.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("encoder."))
    for key in ("injection.proj.weight", "injection.norm.weight", "decoder.blocks.1.pwconv2.weight",
                "head.out.weight"):
        assert not torch.equal(a[key], b[key]), key


def test_mae_resume_after_kill_is_bit_for_bit(tmp_path: Path, audio_dir: Path) -> None:
    straight = tmp_path / "straight"
    train(config(straight, audio_dir, "mae", steps=4))
    resumed = tmp_path / "resumed"
    train(config(resumed, audio_dir, "mae", steps=2))  # "killed" after its step-2 save
    (resumed / "encoder.safetensors").unlink()
    train(config(resumed, audio_dir, "mae", steps=4))
    for name in ("checkpoints/step-0000004/mae.safetensors", "encoder.safetensors"):
        a, b = load_file(str(straight / name)), load_file(str(resumed / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_domain_shares_weight_the_sampler() -> None:
    """{speech: 0.7}: 70 % of the draws are speech, whatever the hours per domain; no shares: by length."""
    lengths = [16000 * s for s in (1, 2, 3, 10, 20)]
    clips = [np.zeros(n, dtype=np.float32) for n in lengths]
    domains = ["speech", "speech", "music", "music", "sound"]
    plain = AudioBank([str(i) for i in range(5)], clips, domains)
    assert plain.weights is plain.lengths  # unweighted draws stay those of earlier runs, bit for bit
    bank = AudioBank([str(i) for i in range(5)], clips, domains, {"speech": 0.7})
    shares = bank.sampled_shares()
    assert shares["speech"] == pytest.approx(0.7) and shares["music"] == pytest.approx(0.3 * 13 / 33)
    gen = torch.Generator().manual_seed(0)
    picks = np.array([bank.pick(gen) for _ in range(4000)])
    drawn = np.bincount(picks, minlength=5)
    assert drawn[:2].sum() / len(picks) == pytest.approx(0.7, abs=0.03)
    assert drawn[0] / drawn[1] == pytest.approx(0.5, rel=0.15)  # by length within the domain
    with pytest.raises(ValueError, match="without training audio"):
        sampling_weights(np.array(lengths), domains, {"mixture": 0.2})
    with pytest.raises(ValueError, match="sum to at most 1"):
        sampling_weights(np.array(lengths), domains, {"speech": 0.7, "music": 0.5})



def test_phase_lr_scale_moves_the_phase_rows_that_many_times_as_far() -> None:
    from dataclasses import replace

    from conftest import make_tiny
    from dashtok.train.tokenizer_stage import build_discriminators, build_optimizers

    base = TrainConfig.from_dict({"stage": "tokenizer", "out": "unused", "lr": 1e-3})
    moved, moved_bias = [], []
    for scale in (1.0, 4.0):
        model = make_tiny(0).train()
        before = model.head.out.weight.detach().clone()
        before_bias = model.head.out.bias.detach().clone()
        cfg = replace(base, tokenizer=replace(base.tokenizer, phase_lr_scale=scale))
        opt, _ = build_optimizers(model, build_discriminators(cfg.tokenizer), cfg)
        torch.manual_seed(1)
        opt.zero_grad()
        model.synthesize(torch.randn(1, 4, model.latent_dim)).square().mean().backward()
        opt.step()
        moved.append(model.head.out.weight.detach() - before)
        moved_bias.append(model.head.out.bias.detach() - before_bias)
    rows = moved[0].shape[0] // 2
    for a, b in ((moved[0], moved[1]), (moved_bias[0], moved_bias[1])):
        assert torch.equal(b[:rows], a[:rows])  # the magnitude rows: untouched by the scale
        assert a[rows:].abs().max() > 0
        torch.testing.assert_close(b[rows:], 4.0 * a[rows:], rtol=1e-4, atol=1e-7)
    for bad in ({"phase_lr_scale": float("nan")}, {"gain_db": -20.0}, {"gain_db": [0.0]}, {"gain_db": [-6.0, -6.0]}):
        with pytest.raises(ValueError, match="phase_lr_scale|gain_db"):
            TrainConfig.from_dict({"stage": "tokenizer", "out": "unused", "tokenizer": bad})


def test_feature_cache_levels_are_the_encoder_at_that_level() -> None:
    """gain_db: a crop at -20 dB carries the encoder's features of the audio at -20 dB and that audio; without
    levels the batches are those of earlier runs, draw for draw."""
    from conftest import make_tiny
    from dashtok.train.features import FeatureCache

    model = make_tiny(0).eval()
    clips = [speechlike(3.0, seed=0), speechlike(3.5, seed=1)]  # long enough to need no padding
    bank = AudioBank(["a", "b"], clips)
    plain = FeatureCache(model, bank, 8)
    levels = FeatureCache(model, bank, 8, (-20.0,))
    hop = model.hop_length
    for i in range(2):
        quiet = model.features(torch.from_numpy(bank.audio(i) * np.float32(0.1))[None])
        n = plain.semantic[i].shape[1]
        torch.testing.assert_close(levels.semantic[i][1], quiet.semantic[0, :n], rtol=0, atol=1e-6)
        torch.testing.assert_close(levels.patches[i][1], quiet.patches[0, :n], rtol=0, atol=1e-6)
        assert torch.equal(levels.semantic[i][0], plain.semantic[i][0])
        assert not torch.allclose(levels.semantic[i][1], levels.semantic[i][0], atol=1e-3)
    # each crop: a clip, a start, then (with levels) a level, all from the step's generator
    feats, audio = levels.batch(torch.Generator().manual_seed(0), 32, 8, hop)
    gen = torch.Generator().manual_seed(0)
    crops = weighted_crops(levels.frames, 32, 8, gen)
    drawn = torch.randint(0, 2, (32,), generator=gen).tolist()
    assert 0 < sum(drawn) < 32  # both levels occur
    for k, ((i, s), level) in enumerate(zip(crops, drawn, strict=True)):
        assert torch.equal(feats.semantic[k], levels.semantic[i][level, s:s + 8])
        gain = 0.1 if level else 1.0
        torch.testing.assert_close(audio[k], plain.audio[i][s * hop:(s + 8) * hop] * gain, rtol=1e-6, atol=0)
    # no levels: no level draw, the crops of earlier runs
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    feats, audio = plain.batch(g1, 4, 8, hop)
    for k, (i, s) in enumerate(weighted_crops(plain.frames, 4, 8, g2)):
        assert torch.equal(feats.semantic[k], plain.semantic[i][0, s:s + 8])
        assert torch.equal(audio[k], plain.audio[i][s * hop:(s + 8) * hop])
    assert torch.equal(g1.get_state(), g2.get_state())


def test_validation_reports_real_and_synthetic_speech_apart_and_the_artifact_tone() -> None:
    from conftest import make_tiny
    from dashtok.train.run import evaluate

    clips = [speechlike(2.0, seed=s) for s in range(3)]
    bank = AudioBank(["a", "b", "c"], clips, ["speech", "speech", "music"], sources=["asterisk", "espeak", "x"])
    scores = evaluate(make_tiny(0), bank)
    for key in ("pesq_wb", "stoi"):  # the mean over all speech is the mean of the one real and one synthetic clip
        assert scores[key] == pytest.approx((scores[f"{key}/real"] + scores[f"{key}/synthetic"]) / 2, abs=1e-3)
    assert np.isfinite(scores["artifact_tone_db"]) and np.isfinite(scores["mel_distance"])
    assert np.isfinite(scores["artifact_tone_0hz_db"])
    # phase errors on the speech clips, on the tiny model's head grid; an untrained decoder's are near chance:
    # anti-wrapped differences of independent uniform angles average pi / 2
    assert all(0.5 < scores[k] < np.pi for k in ("phase/ip", "phase/gd", "phase/if"))


def _toml(cfg: TrainConfig, path: Path) -> Path:
    """A config as the TOML file ``dashtok train`` reads (the tables these tests set)."""
    import json as _json
    from dataclasses import asdict

    d = asdict(cfg)
    lines = [f"{k} = {_json.dumps(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for table in ("data", "tokenizer"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {_json.dumps(v)}" for k, v in d[table].items()
                  if v is not None and not isinstance(v, dict) and v != []]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_pack_and_resume_from_carry_a_run_to_another_folder(tmp_path: Path, audio_dir: Path, mae_run: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``dashtok train CONFIG --pack OUT`` writes the run's moving average (+ discriminators of that step) as a
    tokenizer file; ``--resume-from`` starts another run folder at that step and trains on from there."""
    from dataclasses import replace

    from dashtok.cli import main
    from dashtok.train.state import disc_path

    tok = {"ema_decay": 0.9, "init": str(mae_run)}
    first = config(tmp_path / "first", audio_dir, "tokenizer", tokenizer=tok)
    train(first)  # 4 steps, discriminators trained from step 2
    packed = tmp_path / "packed.safetensors"
    # packing reads only the run folder, so it works where the run's clips are not (another machine)
    moved = replace(first, data=replace(first.data, folders=(str(tmp_path / "elsewhere"),)))
    assert main(["train", str(_toml(moved, tmp_path / "first.toml")), "--pack", str(packed)]) == 0
    model = Tokenizer.load(packed)
    assert model.training_record["steps"] == 4 and model.training_record["weights"] == "exponential moving average"
    ema = load_file(str(tmp_path / "first" / "checkpoints" / "step-0000004" / "ema.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ema.items())
    assert disc_path(packed).is_file()
    second = config(tmp_path / "second", audio_dir, "tokenizer", steps=6, tokenizer=tok)
    toml = str(_toml(second, tmp_path / "second.toml"))
    assert main(["train", toml, "--resume-from", str(packed)]) == 0
    assert [int(s) for s in losses(tmp_path / "second", "step")] == [5, 6]  # it went on from step 4
    capsys.readouterr()
    assert main(["train", toml, "--resume-from", str(packed)]) == 2  # the folder has its own checkpoints now
    assert "already has" in capsys.readouterr().err
    mae = _toml(config(tmp_path / "mae", audio_dir, "mae"), tmp_path / "mae.toml")
    assert main(["train", str(mae), "--pack", str(tmp_path / "x.safetensors")]) == 2
    assert "tokenizer stage" in capsys.readouterr().err
    for argv, needle in (([toml, "--stats"], "--stats goes with --pack"),
                         ([toml, "--force"], "--force goes with --resume-from"),
                         ([toml, "--pack", "a.safetensors", "--resume-from", "b.safetensors"], "does not go with"),
                         ([], "required: config")):
        with pytest.raises(SystemExit) as exit_:
            main(["train", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("dashtok train: error:"), err
        assert needle in err[0]


def test_a_csv_log_keeps_its_columns_when_rows_change(tmp_path: Path) -> None:
    """Rows whose keys come in another order go under the file's header; a row with a new column (a measure added
    while a run was going on) rewrites the file with every column, earlier rows blank there."""
    import csv

    from dashtok.train.run import Run

    run = Run(tmp_path)
    run.log({"step": 1, "a": 0.5}, "eval.csv")
    run.log({"a": 0.25, "step": 2}, "eval.csv")
    run.log({"step": 3, "phase/gd": 0.7, "a": 0.125}, "eval.csv")
    with (tmp_path / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["a"], r["phase/gd"]) for r in rows] == [("1", "0.5", ""), ("2", "0.25", ""),
                                                                  ("3", "0.125", "0.7")]


def test_features_on_disk_train_as_features_in_memory(tmp_path: Path, audio_dir: Path, mae_run: Path) -> None:
    """data.feature_cache: the frozen features are written as the clips are read and memory-mapped; the run's
    batches, losses and shipped latent statistics are those of the in-memory cache, and a second run reuses the
    files while other data makes new ones."""
    from dashtok.tokenizer import Features
    from dashtok.train.features import FeatureCache, cache_key
    from dashtok.train.tokenizer_stage import build_tokenizer, set_latent_statistics

    init = {"init": str(mae_run), "gan_start": 2, "gain_db": [-20.0]}
    shares = {"domain_shares": {"unknown": 1.0}}  # drawn by the weights code path
    memory = tmp_path / "memory"
    train(config(memory, audio_dir, "tokenizer", steps=4, tokenizer=init, data=shares))
    disk = tmp_path / "disk"
    cache = tmp_path / "features"
    train(config(disk, audio_dir, "tokenizer", steps=4, tokenizer=init,
                 data={**shares, "feature_cache": str(cache)}))
    for key in ("mel/l1", "adv/disc", "total"):  # nan (no GAN yet) compares equal to nan here
        assert np.array_equal(losses(disk, key), losses(memory, key), equal_nan=True), key
    a, b = Tokenizer.load(memory / "model.safetensors"), Tokenizer.load(disk / "model.safetensors")
    assert torch.equal(a.latent_mean, b.latent_mean) and torch.equal(a.latent_std, b.latent_std)
    # the statistics summed clip by clip equal those of all frames at once
    cfg = config(tmp_path / "x", audio_dir, "tokenizer", tokenizer=init)
    model = build_tokenizer(cfg).eval()
    mapped = FeatureCache.on_disk(model, cfg.data, tmp_path / "features2", 8, (-20.0,))
    set_latent_statistics(model, mapped)
    with torch.no_grad():
        lat = torch.cat([model.inject(Features(s[:1], p[:1], torch.tensor([s.shape[1]])))[0]
                         for s, p in zip(mapped.semantic, mapped.patches, strict=True)])
    torch.testing.assert_close(model.latent_mean, lat.mean(0), rtol=0, atol=1e-6)
    torch.testing.assert_close(model.latent_std, lat.std(0), rtol=1e-5, atol=1e-6)
    # reuse, and a rebuild when the data differ
    (made,) = list(cache.iterdir())  # cache/KEY
    stamp = (made / "semantic.f32").stat().st_mtime_ns
    FeatureCache.on_disk(model, cfg.data, cache, 8, (-20.0,))
    assert (made / "semantic.f32").stat().st_mtime_ns == stamp and len(list(cache.iterdir())) == 1
    fewer = config(tmp_path / "y", audio_dir, "tokenizer", data={"folders": [str(audio_dir / "clip1.wav")]})
    assert cache_key(model, fewer.data, 8, (-20.0,)) != cache_key(model, cfg.data, 8, (-20.0,))


def test_features_on_disk_without_injection_and_after_an_edited_clip(tmp_path: Path) -> None:
    """No injection: no patches (an empty file), still the in-memory cache's batches; an edited clip, or other
    levels, give a cache of their own beside the first (a run reading one is never overwritten)."""
    import shutil

    from conftest import make_tiny, tiny_config
    from dashtok.train.config import DataConfig
    from dashtok.train.features import FeatureCache

    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(2):
        sf.write(audio / f"clip{i}.wav", speechlike(2.0 + i, seed=i), 16000)
    cfg = tiny_config()
    model = make_tiny(0, tiny_config(injection={**cfg.injection.__dict__, "enabled": False})).eval()
    data = DataConfig(folders=(str(audio),))
    memory = FeatureCache(model, AudioBank.from_config(data), 8)
    disk = FeatureCache.on_disk(model, data, tmp_path / "cache", 8)
    for seed in range(3):
        (fa, aa), (fb, ab) = (c.batch(torch.Generator().manual_seed(seed), 4, 8, model.hop_length)
                              for c in (memory, disk))
        assert torch.equal(fa.semantic, fb.semantic) and torch.equal(fa.patches, fb.patches) and torch.equal(aa, ab)
    assert fb.patches.shape[-1] == 0
    (first,) = list((tmp_path / "cache").iterdir())
    shutil.copy(audio / "clip0.wav", audio / "clip1.wav")  # an edited clip
    FeatureCache.on_disk(model, data, tmp_path / "cache", 8)
    FeatureCache.on_disk(model, data, tmp_path / "cache", 8, (-20.0,))
    assert len(list((tmp_path / "cache").iterdir())) == 3 and (first / "meta.json").is_file()


def test_config_mistakes_are_one_line_before_anything_is_written(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from dashtok.train.__main__ import main

    manifest = tmp_path / "train.jsonl"
    manifest.write_text("")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cfg = tmp_path / "mae.toml"
    cfg.write_text(f'stage = "mae"\nout = "{tmp_path / "run"}"\nsteps = 2\n[data]\nmanifests = ["{manifest}"]\n')
    for changes, needle in ((['steps="ten"'], "steps must be an integer, not 'ten'"),
                            (["lr=\"x\""], "lr must be a number, not 'x'"),
                            (["steps100"], "--set item 'steps100' needs KEY=VALUE"),
                            (["data.manifests=x.jsonl"], "data.manifests must be a list, not 'x.jsonl'"),
                            (["stage=nope"], "stage must be one of mae | tokenizer | vae | flow | enhance"),
                            (["batch_size=0"], "batch_size must be >= 1, not 0"),
                            ([f'data.manifests=["{tmp_path / "nope.jsonl"}"]'],
                             f"data.manifests {tmp_path / 'nope.jsonl'}: no such file or directory"),
                            ([f"out={a_file / 'run'}"], f"out {a_file / 'run'} cannot be made a folder")):
        assert main([str(cfg), "--set", *changes]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"dashtok train: error: {cfg}: ") and needle in err[0], err
    assert not (tmp_path / "run").exists()
