"""The Dasheng encoder equals upstream (golden fixture) and chunks like upstream."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import assert_golden
from dashtok import Tokenizer
from dashtok.checkpoint import (
    CheckpointError,
    dasheng_configs,
    load_dasheng_checkpoint,
    port_dasheng_state_dict,
)
from dashtok.config import DecoderConfig, FrontendConfig, TopDbScope
from dashtok.encoder import DashengEncoder

# upstream dasheng's outputs, made on one CPU: compared relative to their scale (2.9e-7 measured without SIMD; the
# front end's own test shows that a wrong window, log or mel order moves them by far more)
TOL = 1e-5
FIXTURE = Path(__file__).parent / "fixtures" / "upstream_golden.safetensors"
GOLDEN = load_file(str(FIXTURE))

pytestmark = pytest.mark.golden  # golden fixtures and front-end numerics: run under every CPU kernel path
STATE = {k.removeprefix("model."): v for k, v in GOLDEN.items() if k.startswith("model.")}
with safe_open(str(FIXTURE), "pt") as _f:
    UPSTREAM_CONFIG = json.loads(_f.metadata()["config"])


def ported(scope: TopDbScope = "example") -> DashengEncoder:
    fe, cfg = dasheng_configs(UPSTREAM_CONFIG, STATE)
    enc = DashengEncoder(FrontendConfig(top_db_scope=scope), cfg)
    port_dasheng_state_dict(enc, STATE, FIXTURE)
    return enc.eval()


def test_state_dict_keys_equal_upstream() -> None:
    fe, cfg = dasheng_configs(UPSTREAM_CONFIG, STATE)
    assert cfg.embed_dim == 32 and cfg.depth == 2 and cfg.num_heads == 2 and cfg.target_length == 48
    assert set(DashengEncoder(fe, cfg).state_dict()) == set(STATE)


@torch.no_grad()
def test_single_clips_equal_upstream() -> None:
    enc = ported()
    for i, n in enumerate(GOLDEN["lengths"].tolist()):
        out = enc(GOLDEN["wav"][i : i + 1, :n])
        assert_golden(out, GOLDEN[f"out_single_{i}"], TOL)


@torch.no_grad()
def test_masked_batch_equals_upstream_on_valid_tokens() -> None:
    enc = ported("batch")  # upstream's batched front end
    lengths = GOLDEN["lengths"]
    tokens = (lengths // 160 + 1) // 4  # == upstream's lengths // 640 for these clips
    assert torch.equal(tokens, lengths // 640)
    out = enc(GOLDEN["wav"], tokens)
    for i, n in enumerate(tokens.tolist()):
        assert_golden(out[i, :n], GOLDEN["out_batch"][i, :n], TOL)
        assert torch.count_nonzero(out[i, n:]) == 0  # padding never leaks out


@torch.no_grad()
def test_chunks_are_independent_and_grouping_does_not_matter() -> None:
    enc = ported()
    x = enc.normalize(enc.log_mel(GOLDEN["wav"][:1]))  # 130 frames = 32 tokens, chunks of 12 tokens
    whole = enc.transformer(x)
    pieces = torch.cat([enc.transformer(x[..., s : s + 48]) for s in range(0, x.shape[-1], 48)], dim=1)
    torch.testing.assert_close(pieces, whole, rtol=0, atol=1e-6)
    enc.max_chunks = 1
    torch.testing.assert_close(enc.transformer(x), whole, rtol=0, atol=1e-6)


def test_upstream_torch_checkpoint_loads_strictly(tmp_path: Path) -> None:
    path = tmp_path / "dasheng_tiny.pt"
    torch.save({"model": STATE, "config": UPSTREAM_CONFIG}, path)
    enc = load_dasheng_checkpoint(path)
    with torch.no_grad():
        n = int(GOLDEN["lengths"][0])
        assert_golden(enc(GOLDEN["wav"][:1, :n]), GOLDEN["out_single_0"], TOL)

    tok = Tokenizer.from_dasheng(path, decoder=DecoderConfig.preset("tiny"))
    assert tok.latent_dim == 32 and tok.config.encoder.target_length == 48
    for key, value in STATE.items():
        assert torch.equal(tok.encoder.state_dict()[key], value), key

    broken = dict(STATE)
    del broken["blocks.1.mlp.fc2.bias"]
    broken["blocks.0.attn.extra"] = torch.zeros(1)
    broken["norm.weight"] = torch.ones(33)
    torch.save({"model": broken, "config": UPSTREAM_CONFIG}, path)
    with pytest.raises(CheckpointError) as err:
        load_dasheng_checkpoint(path)
    msg = str(err.value)
    assert "blocks.1.mlp.fc2.bias" in msg and "blocks.0.attn.extra" in msg and "norm.weight" in msg

    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable torch checkpoint"):
        load_dasheng_checkpoint(path)
