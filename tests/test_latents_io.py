"""Latent files round-trip, and files from another model or version are rejected with a clear message."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dashtok.latents_io import LatentFile, LatentFileError, check_compatible, read_latents, write_latents


def sample(**changes: object) -> LatentFile:
    base = dict(latents=torch.randn(10, 8), sample_rate=16000, frame_rate=25.0, original_num_samples=[6400],
                model_id="m@abc", config_hash="h1", source="x.wav")
    return LatentFile(**{**base, **changes})  # type: ignore[arg-type]


def test_round_trip_single_and_batched(tmp_path: Path) -> None:
    lf = sample()
    write_latents(tmp_path / "a.safetensors", lf)
    back = read_latents(tmp_path / "a.safetensors")
    assert torch.equal(back.latents, lf.latents)
    assert (back.sample_rate, back.frame_rate, back.original_num_samples) == (16000, 25.0, [6400])
    assert (back.model_id, back.config_hash, back.kind, back.source) == ("m@abc", "h1", "latents", "x.wav")
    write_latents(tmp_path / "c.safetensors", sample(latent_id="latents@1"))
    assert back.latent_id == "" and read_latents(tmp_path / "c.safetensors").latent_id == "latents@1"
    batched = sample(latents=torch.randn(2, 10, 8), lengths=torch.tensor([10, 4]), original_num_samples=[6400, 2500])
    write_latents(tmp_path / "b.safetensors", batched)
    z, lengths = read_latents(tmp_path / "b.safetensors").batched()
    assert torch.equal(z, batched.latents) and lengths.tolist() == [10, 4]


def test_unknown_version_and_foreign_files_are_rejected(tmp_path: Path) -> None:
    p = tmp_path / "v2.safetensors"
    save_file({"latents": torch.zeros(3, 8)}, str(p), metadata={"format": "dashtok-latents", "version": "3"})
    with pytest.raises(LatentFileError, match="version 3 is not supported"):
        read_latents(p)
    old = tmp_path / "v1.safetensors"
    save_file({"latents": torch.zeros(3, 8)}, str(old), metadata={"format": "dashtok-latents", "version": "1"})
    with pytest.raises(LatentFileError, match="version 1 was written by dashtok before the release-faithful"):
        read_latents(old)
    q = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(3)}, str(q), metadata={"format": "dashtok/1"})
    with pytest.raises(LatentFileError, match="not a dashtok latent file"):
        read_latents(q)
    r = tmp_path / "corrupt.safetensors"
    r.write_bytes(b"garbage")
    with pytest.raises(LatentFileError, match=str(r)):
        read_latents(r)
    bad = sample(latents=torch.full((4, 8), float("nan")))
    write_latents(tmp_path / "nan.safetensors", bad)
    with pytest.raises(LatentFileError, match="NaN"):
        read_latents(tmp_path / "nan.safetensors")


def test_latents_of_another_model_are_rejected() -> None:
    lf = sample()
    check_compatible(lf, "m@abc", "h1", 8, "x")
    with pytest.raises(LatentFileError, match="8-d latents"):
        check_compatible(lf, "m@abc", "h1", 16, "x")
    with pytest.raises(LatentFileError, match="config"):
        check_compatible(lf, "n@abc", "h2", 8, "x")
    with pytest.raises(LatentFileError, match="other weights"):
        check_compatible(lf, "m@def", "h1", 8, "x")
    check_compatible(lf, "m@def", "h1", 8, "x", any_weights=True)
    with pytest.raises(LatentFileError, match="semantic"):
        check_compatible(sample(kind="semantic"), "m@abc", "h1", 8, "x")
    # a model that makes the same latents (another decoder on the same encoder and injection) decodes them as is
    shared = sample(latent_id="latents@123")
    check_compatible(shared, "m@def", "h1", 8, "x", latent_id="latents@123")
    check_compatible(shared, "n@def", "h2", 8, "x", latent_id="latents@123")  # even with another decoder config
    with pytest.raises(LatentFileError, match="other weights"):
        check_compatible(shared, "m@def", "h1", 8, "x", latent_id="latents@456")
    with pytest.raises(LatentFileError, match="other weights"):  # files without a latent id: the model id decides
        check_compatible(lf, "m@def", "h1", 8, "x", latent_id="")
