"""dashtok's own numerics do not drift: the tiny seeded model reproduces its committed outputs."""

from pathlib import Path

import torch
from safetensors.torch import load_file

from conftest import make_tiny

GOLDEN = load_file(str(Path(__file__).parent / "fixtures" / "tiny_golden.safetensors"))


def test_tiny_model_reproduces_golden_outputs() -> None:
    model = make_tiny(seed=0)
    enc = model.encode(GOLDEN["wav"], return_semantic=True)
    torch.testing.assert_close(enc.semantic, GOLDEN["semantic"], rtol=0, atol=1e-5)
    torch.testing.assert_close(enc.latents, GOLDEN["latents"], rtol=0, atol=1e-5)
    torch.testing.assert_close(model.decode(enc.latents).audio, GOLDEN["audio"], rtol=0, atol=1e-5)
