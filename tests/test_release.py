"""The official DashengTokenizer release: golden parity with its remote code, its layout both ways, bad inputs.

``fixtures/official_tiny`` and ``fixtures/official_golden.safetensors`` were written by the official code itself
(``fixtures/make_official_golden.py``, torch/torchaudio 2.9.1, transformers 4.57).
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import assert_golden, make_tiny, relative_error, speechlike, tiny_config
from dashtok import Tokenizer
from dashtok.checkpoint import CheckpointError
from dashtok.cli import main
from dashtok.encoder import Block
from dashtok.injection import AcousticFrontEnd
from dashtok.release import derived_buffer_tolerance, hub_cache_dir

FIXTURES = Path(__file__).parent / "fixtures"
OFFICIAL = FIXTURES / "official_tiny"
GOLDEN = load_file(str(FIXTURES / "official_golden.safetensors"))

pytestmark = pytest.mark.golden  # golden fixtures and front-end numerics: run under every CPU kernel path


# The official code ran on torch/torchaudio 2.9.1 on one CPU; float32 rounding of another kernel path moves dashtok's
# outputs by up to ~2e-6 of their scale (measured: the magnitude mel, the latents and the audio, without SIMD),
# while a wrong log base, window or hop moves them by more than 1e-3.
TOL = 1e-5


@pytest.fixture(scope="module")
def official() -> Tokenizer:
    return Tokenizer.from_pretrained(OFFICIAL)


def test_acoustic_front_end_equals_torchaudio(official: Tokenizer) -> None:
    inj = official.injection
    assert inj is not None and isinstance(inj.front_end, AcousticFrontEnd)
    assert_golden(inj.front_end.mel_spec(GOLDEN["wav_short"]), GOLDEN["acoustic_mel_short"], TOL)
    assert_golden(inj.front_end(GOLDEN["wav_short"]), GOLDEN["acoustic_logmel_short"], TOL)
    assert_golden(inj.front_end.mel_spec(GOLDEN["wav_batch"]), GOLDEN["acoustic_mel_batch"], TOL)


def test_acoustic_patches_of_a_padded_batch_equal_each_clip_alone(official: Tokenizer) -> None:
    inj = official.injection
    assert inj is not None
    clips = [torch.from_numpy(speechlike(s, seed=i)) for i, s in enumerate((1.7, 0.6, 1.03))]
    t = max(len(c) for c in clips)
    wav = torch.stack([torch.nn.functional.pad(c, (0, t - len(c))) for c in clips])
    lengths = torch.tensor([len(c) for c in clips])
    batch = inj.patches(wav, lengths, torch.empty(0))
    for i, c in enumerate(clips):
        alone = inj.patches(c[None], torch.tensor([len(c)]), torch.empty(0))[0]
        assert torch.equal(batch[i, : len(alone)], alone)  # (patches past it are masked out of the latents)


@pytest.mark.parametrize("clip", ["short", "long", "batch"])
def test_encode_and_decode_match_the_official_code(official: Tokenizer, clip: str) -> None:
    """A 1.3 s clip, a 10.5 s clip (a full 10 s chunk plus a partial one) and an equal-length batch."""
    model = Tokenizer.from_pretrained(OFFICIAL, top_db_scope="batch") if clip == "batch" else official
    latents = model.encode(GOLDEN[f"wav_{clip}"]).latents
    assert_golden(latents, GOLDEN[f"latents_{clip}"], TOL)
    assert_golden(model.decode(GOLDEN[f"latents_{clip}"]).audio, GOLDEN[f"audio_{clip}"], TOL)


@pytest.mark.parametrize("wrong", ["log10", "hamming window", "hop 161", "mel order swapped"])
def test_a_wrong_acoustic_front_end_fails_the_golden_tolerance(wrong: str) -> None:
    """The tolerance above still catches a real error in the injection's front end (its golden log mel or the
    golden latents, which the tests above compare, move by far more than it)."""
    model = Tokenizer.from_pretrained(OFFICIAL)
    fe = model.injection.front_end if model.injection is not None else None
    assert isinstance(fe, AcousticFrontEnd)
    with torch.no_grad():
        if wrong == "log10":
            fe._log = lambda mel: torch.log10(torch.clamp(mel, min=fe.log_floor))  # type: ignore[method-assign]
        elif wrong == "hamming window":
            fe.mel_spec.spectrogram.window.copy_(torch.hamming_window(fe.mel_spec.spectrogram.win_length))
        elif wrong == "hop 161":
            fe.mel_spec.spectrogram.hop_length = 161
        else:
            fe.mel_spec.mel_scale.fb.copy_(fe.mel_spec.mel_scale.fb.flip(1))
        logmel, latents = fe(GOLDEN["wav_short"]), model.encode(GOLDEN["wav_short"]).latents
    # (the LayerNorm after the projection hides most of a log base's constant factor in the latents, 9.5e-5:
    # the front end's own golden output shows it)
    assert max(relative_error(logmel, GOLDEN["acoustic_logmel_short"]),
               relative_error(latents, GOLDEN["latents_short"])) > 100 * TOL


def test_release_head_caps_magnitudes_at_100(official: Tokenizer) -> None:
    assert official.config.decoder.max_magnitude == 100.0
    with torch.no_grad():
        log_mag = official.head.out(official.decoder(GOLDEN["latents_short"]))[..., :641]
    assert bool((log_mag > torch.log(torch.tensor(100.0))).any())  # the golden outputs exercise the cap


def test_config_maps_to_the_release_preset_shapes() -> None:
    raw = json.loads((OFFICIAL / "config.json").read_text())
    release = {k: v for k, v in raw.items() if k in ("model_type", "architectures")}
    d = Path(__file__).parent / "_unused"
    from dashtok.release import config_from_official

    cfg = config_from_official(release, d / "config.json")  # every architecture key absent: the release's defaults
    preset = Tokenizer(cfg).config
    assert (preset.encoder.embed_dim, preset.encoder.depth, preset.encoder.num_heads) == (1280, 32, 16)
    assert (preset.decoder.dim, preset.decoder.num_blocks, preset.decoder.intermediate_dim) == (1280, 12, 5120)
    assert preset.injection.n_mels * 4 == 512 and preset.decoder.n_fft + 2 == 1282


def test_official_to_dashtok_to_official_is_bitwise(official: Tokenizer, tmp_path: Path) -> None:
    official.save(tmp_path / "m.safetensors")
    back = Tokenizer.load(tmp_path / "m.safetensors").save_official(tmp_path / "official")
    original, written = load_file(str(OFFICIAL / "model.safetensors")), load_file(str(back / "model.safetensors"))
    assert_same_official_tensors(original, written)
    arch = ("embed_dim", "depth", "num_heads", "decoder_embed_dim", "decoder_depth", "decoder_intermediate_size",
            "istft_n_fft", "istft_hop", "upsample_tokens", "n_mels_patch", "hop_length", "model_type")
    a, b = json.loads((OFFICIAL / "config.json").read_text()), json.loads((back / "config.json").read_text())
    assert {k: a[k] for k in arch} == {k: b[k] for k in arch}


def assert_same_official_tensors(original: dict[str, torch.Tensor], written: dict[str, torch.Tensor]) -> None:
    """Every weight bitwise; the filterbanks and windows that dashtok checkpoints do not store (the injection's and
    the head's, derived from the config on load) within the loader's tolerance: on the machine that made the
    fixture they are bitwise too, on another kernel path their float32 derivation rounds differently."""
    assert original.keys() == written.keys()
    for key in original:
        assert original[key].dtype == written[key].dtype, key
        if key.endswith((".fb", "window")):
            tol = derived_buffer_tolerance(original[key], original[key].dtype)
            assert float((original[key] - written[key]).abs().max()) <= tol, key
        else:
            assert torch.equal(original[key], written[key]), key


def test_dashtok_to_official_to_dashtok_is_bitwise(tmp_path: Path) -> None:
    model = make_tiny(seed=4, config=tiny_config(name="mine", decoder={**tiny_config().decoder.__dict__, "dim": 40}))
    with torch.no_grad():
        model.latent_mean.normal_()
        model.latent_std.uniform_(0.5, 2.0)
    model.training_record = {"trained": True, "steps": 7}
    model.save(tmp_path / "m.safetensors")
    model = Tokenizer.load(tmp_path / "m.safetensors")
    again = Tokenizer.from_official(model.save_official(tmp_path / "official"))
    assert again.config == model.config and again.model_id == model.model_id
    assert again.training_record == {"trained": True, "steps": 7}
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("change, reason", [
    ({"injection": {"enabled": False}}, "no injection"),
    ({"injection": {"enabled": True, "front_end": "encoder_mel"}}, "'encoder_mel'"),
    ({"decoder": {**tiny_config().decoder.__dict__, "max_magnitude": 1000.0}}, "caps at 100"),
    ({"decoder": {**tiny_config().decoder.__dict__, "upsampler_width": "decoder"}}, "upsampler_width"),
])
def test_export_refuses_what_the_official_layout_cannot_express(tmp_path: Path, change: dict, reason: str) -> None:
    model = make_tiny(config=tiny_config(**change))
    with pytest.raises(CheckpointError, match=reason):
        model.save_official(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_files_without_optional_buffers_load_the_same(official: Tokenizer, tmp_path: Path) -> None:
    d = tmp_path / "bare"
    shutil.copytree(OFFICIAL, d)
    state = load_file(str(d / "model.safetensors"))
    optional = [k for k in state if k.endswith(("window", ".fb", "num_batches_tracked"))]
    assert len(optional) == 6
    save_file({k: v for k, v in state.items() if k not in optional}, str(d / "model.safetensors"),
              metadata={"format": "pt"})
    bare = Tokenizer.from_official(d)  # the filterbanks and windows derived here, not the stored ones: equal on
    # the machine that made the fixture, within float32 rounding of the derivation on any other
    assert_golden(bare.encode(GOLDEN["wav_short"]).latents, official.encode(GOLDEN["wav_short"]).latents, TOL)


def _broken(tmp_path: Path, edit_state=None, edit_config=None) -> Path:  # type: ignore[no-untyped-def]
    d = tmp_path / "broken"
    shutil.copytree(OFFICIAL, d)
    if edit_state is not None:
        state = load_file(str(d / "model.safetensors"))
        edit_state(state)
        save_file(state, str(d / "model.safetensors"), metadata={"format": "pt"})
    if edit_config is not None:
        cfg = json.loads((d / "config.json").read_text())
        edit_config(cfg)
        (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_weight_mismatches_are_all_named(tmp_path: Path) -> None:
    def edit(state: dict) -> None:
        del state["decoder.backbone.convnext.1.gamma"]
        state["decoder.backbone.extra.weight"] = torch.zeros(3)
        state["encoder.norm.bias"] = torch.zeros(31)
        state["encoder.front_end.mel_spec.mel_scale.fb"] = state["encoder.front_end.mel_spec.mel_scale.fb"] * 1.01

    with pytest.raises(CheckpointError) as err:
        Tokenizer.from_pretrained(_broken(tmp_path, edit_state=edit))
    msg = str(err.value)
    for needle in ("model.safetensors", "missing keys (1): decoder.backbone.convnext.1.gamma",
                   "unexpected keys (1): decoder.backbone.extra.weight",
                   "encoder.norm.bias: file (31,) vs config (32,)",
                   "encoder.front_end.mel_spec.mel_scale.fb: differs from the buffer dashtok derives"):
        assert needle in msg, msg


@pytest.mark.parametrize("edit, needle", [
    (lambda c: c.update(rope_theta=10000), "unknown config keys ['rope_theta']"),
    (lambda c: c.update(hop_length=256), "hop_length=256 is not supported"),
    (lambda c: c.update(num_heads=3), "architecture not buildable"),
    (lambda c: c.update(depth=-1), "positive integers: depth=-1"),
    (lambda c: c.update(istft_hop=200), "architecture not buildable"),
])
def test_bad_official_configs_are_refused_by_name(tmp_path: Path, edit, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CheckpointError, match="config.json") as err:
        Tokenizer.from_pretrained(_broken(tmp_path, edit_config=edit))
    assert needle in str(err.value)


def test_unreadable_inputs_give_one_clear_error(tmp_path: Path) -> None:
    d = _broken(tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: not a readable safetensors file"):
        Tokenizer.from_pretrained(d)
    neither = tmp_path / "neither"
    neither.mkdir()
    (neither / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="neither a dashtok checkpoint directory"):
        Tokenizer.from_pretrained(neither)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="model_type 'bert'"):
        Tokenizer.from_pretrained(other)
    (other / "config.json").write_text('{"model_type": "dashengtok')  # cut short
    with pytest.raises(CheckpointError, match="other: config.json is not readable JSON"):
        Tokenizer.from_pretrained(other)


def test_hub_ids_resolve_through_the_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_cache_dir() == tmp_path / "hub"
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache.*HF_HUB_OFFLINE.*huggingface-cli "
                                              "download mispeech/dashengtokenizer"):
        Tokenizer.from_pretrained("mispeech/dashengtokenizer")
    # a mistyped local file is not looked for in the cache (nor downloaded)
    with pytest.raises(CheckpointError, match="mymodels/tok.safetensors: no such checkpoint file"):
        Tokenizer.from_pretrained("mymodels/tok.safetensors")
    folder = tmp_path / "hub" / "models--mispeech--dashengtokenizer"
    shutil.copytree(OFFICIAL, folder / "snapshots" / "0123abc")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123abc")
    by_id = Tokenizer.from_pretrained("mispeech/dashengtokenizer")
    by_folder = Tokenizer.from_pretrained(folder)
    expected = Tokenizer.from_pretrained(OFFICIAL).encode(GOLDEN["wav_short"]).latents
    assert torch.equal(by_id.encode(GOLDEN["wav_short"]).latents, expected)
    assert torch.equal(by_folder.encode(GOLDEN["wav_short"]).latents, expected)
    (folder / "snapshots" / "4567def").mkdir()  # two snapshots, and refs/main names neither
    (folder / "refs" / "main").write_text("89ab")
    with pytest.raises(CheckpointError, match="refs/main naming '89ab', which is not there, with 2 snapshots"):
        Tokenizer.from_pretrained(folder)


def test_cli_converts_both_ways_and_describes_official_dirs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(OFFICIAL), str(tmp_path / "tok.safetensors")]) == 0
    assert main(["convert", str(tmp_path / "tok.safetensors")]) == 0  # -> tok_official/ beside it
    assert (tmp_path / "tok_official" / "config.json").is_file()
    with pytest.raises(SystemExit) as exit_:
        main(["convert", str(tmp_path / "tok.safetensors")])  # refuses to overwrite
    assert exit_.value.code == 2 and "--force" in capsys.readouterr().err
    a = load_file(str(OFFICIAL / "model.safetensors"))
    b = load_file(str(tmp_path / "tok_official" / "model.safetensors"))
    assert_same_official_tensors(a, b)
    assert main(["info", str(tmp_path / "tok_official"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"].startswith("official") and info["latent_dim"] == 32
    # the output's name says the layout: a .safetensors file is a dashtok checkpoint, a folder the official layout
    assert main(["convert", str(tmp_path / "tok.safetensors"), str(tmp_path / "copy.safetensors")]) == 0
    assert (tmp_path / "copy.safetensors").is_file()
    assert main(["convert", str(tmp_path / "tok_official"), str(tmp_path / "again_official")]) == 0
    assert (tmp_path / "again_official" / "config.json").is_file()
    legacy = FIXTURES / "legacy_tiny_v1.safetensors"
    for argv, needle in ((["convert", str(tmp_path / "tok.safetensors"), str(tmp_path / "x"), "--to", "dashtok"],
                          "is one .safetensors file"),
                         (["convert", str(legacy), str(tmp_path / "legacy_official")],
                          "cannot be written in the official layout")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "legacy_official").exists()


def test_release_preset_has_the_released_shapes() -> None:
    """Dasheng-0.6B encoder 1280/32/16, injection 512 -> 1280 + LayerNorm, decoder 1280-d x 12 blocks (5120), head
    1282; about 805 M parameters and the release's 522 tensors under the official names (built on the meta device)."""
    from dashtok import TokenizerConfig
    from dashtok.release import DASHTOK_ONLY, DERIVED_BUFFERS, official_config, to_official_key

    with torch.device("meta"):
        model = Tokenizer(TokenizerConfig.preset("release"))
    state = model.state_dict()
    assert state["injection.proj.weight"].shape == (1280, 512) and state["injection.norm.weight"].shape == (1280,)
    block = model.encoder.blocks[0]
    assert isinstance(block, Block)
    assert len(model.encoder.blocks) == 32 and block.attn.num_heads == 16
    assert len(model.decoder.blocks) == 12 and state["decoder.blocks.0.pwconv1.weight"].shape == (5120, 1280)
    assert state["head.out.weight"].shape == (1282, 1280) and state["decoder.upsample.weight"].shape == (1280, 1280, 2)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == 805
    official = {to_official_key(k) for k in [*state, *DERIVED_BUFFERS] if k not in DASHTOK_ONLY}
    assert None not in official and len(official) == 522
    released = json.loads((OFFICIAL / "config.json").read_text())  # the fixture's keys are the release's
    expected = {"embed_dim": 1280, "depth": 32, "num_heads": 16, "decoder_embed_dim": 1280, "decoder_depth": 12,
                "decoder_intermediate_size": 5120, "istft_n_fft": 1280, "istft_hop": 320, "upsample_tokens": 2,
                "n_mels_patch": 128, "hop_length": 160}
    cfg = official_config(model.config)
    assert {k: cfg[k] for k in expected} == expected and set(expected) <= set(released)


def test_a_bf16_copy_and_newer_transformers_keys_load(tmp_path: Path) -> None:
    """A release saved in bfloat16 (its derived buffers then differ from dashtok's by bf16 rounding) is computed in
    float32 with dashtok's own front-end buffers; transformers' private config keys are bookkeeping."""
    def to_bf16(state: dict) -> None:
        for k, v in state.items():
            if v.is_floating_point():
                state[k] = v.to(torch.bfloat16)

    d = _broken(tmp_path, edit_state=to_bf16,
                edit_config=lambda c: c.update(torch_dtype="bfloat16", _attn_implementation_autoset=True))
    low = Tokenizer.from_pretrained(d)
    full = Tokenizer.from_pretrained(OFFICIAL)
    derived = Tokenizer(full.config).encoder.mel_spectrogram.mel_scale.fb
    assert low.encoder.mel_spectrogram.mel_scale.fb.dtype == torch.float32
    assert torch.equal(low.encoder.mel_spectrogram.mel_scale.fb, derived)  # dashtok's own, not bf16-rounded values
    assert_golden(low.encode(GOLDEN["wav_short"]).latents, full.encode(GOLDEN["wav_short"]).latents, 0.05)


def test_a_missing_local_path_is_not_taken_for_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(CheckpointError, match="runs/missing: no such checkpoint file"):
        Tokenizer.from_pretrained("runs/missing")


def test_convert_names_its_output_beside_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "offi"
    shutil.copytree(OFFICIAL, d)
    assert main(["convert", str(d / "model.safetensors")]) == 0  # a weights file: named after its directory
    assert (tmp_path / "offi.safetensors").is_file() and not (d / "model.safetensors.safetensors").exists()
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "hub" / "models--someone--tok"
    shutil.copytree(OFFICIAL, folder / "snapshots" / "abc")
    assert main(["convert", str(folder)]) == 0  # a cache folder: into the current directory, not the cache
    assert (tmp_path / "tok.safetensors").is_file()


def test_filterbanks_that_differ_by_float32_rounding_load_and_are_used(tmp_path: Path) -> None:
    """A stored filterbank or window within rounding of dashtok's derivation (another CPU's float32 arithmetic made
    it) is the one the model computes with, in the state dict or not (one a front end apart is refused by name:
    test_weight_mismatches_are_all_named)."""
    keys = ("encoder.model.front_end.0.mel_scale.fb", "encoder.front_end.mel_spec.mel_scale.fb",
            "decoder.head.istft.window")
    g = torch.Generator().manual_seed(0)

    def nudge(state: dict) -> None:
        for key in keys:
            state[key] = state[key] + 2e-5 * torch.rand(state[key].shape, generator=g) * (state[key] != 0)

    d = _broken(tmp_path, edit_state=nudge)
    stored = load_file(str(d / "model.safetensors"))
    model = Tokenizer.from_pretrained(d)
    assert model.injection is not None and model.injection.front_end is not None
    assert torch.equal(model.encoder.mel_spectrogram.mel_scale.fb, stored[keys[0]])
    assert torch.equal(model.injection.front_end.mel_spec.mel_scale.fb, stored[keys[1]])
    assert torch.equal(model.head.istft.window, stored[keys[2]])


def test_save_pretrained_writes_what_from_pretrained_loads(tmp_path: Path) -> None:
    """The official layout where it can express the model, dashtok's file in the directory where it cannot."""
    for name, model in (("releasable", make_tiny(seed=5)),
                        ("capped_1000", make_tiny(seed=5, config=tiny_config(
                            decoder={**tiny_config().decoder.__dict__, "max_magnitude": 1000.0})))):
        d = model.save_pretrained(tmp_path / name)
        assert (d / "config.json").is_file() == (name == "releasable") and (d / "model.safetensors").is_file()
        back = Tokenizer.from_pretrained(d)
        assert back.config.decoder == model.config.decoder
        assert Tokenizer.from_pretrained(model.save_pretrained(tmp_path / "releasable")).config == model.config
        a, b = model.state_dict(), back.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
