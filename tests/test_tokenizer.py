"""Contracts of the Tokenizer API: batch == one at a time, chunked == whole, resampling, bad input."""

import numpy as np
import pytest
import soxr
import torch

from conftest import make_tiny, speechlike, tiny_config
from dashtok import Tokenizer, TokenizerConfig
from dashtok.streaming import StreamingDecoder


def test_read_only_facts(tiny: Tokenizer) -> None:
    assert (tiny.sample_rate, tiny.frame_rate, tiny.hop_length, tiny.latent_dim) == (16000, 25.0, 640, 32)
    for name in ("sample_rate", "frame_rate", "hop_length", "latent_dim"):
        with pytest.raises(AttributeError):
            setattr(tiny, name, 1)


def test_release_shapes() -> None:
    cfg = TokenizerConfig.preset("release")
    assert cfg.latent_dim == 1280 and cfg.frame_rate == 25.0
    assert (cfg.encoder.depth, cfg.encoder.num_heads) == (32, 16)
    assert (cfg.decoder.dim, cfg.decoder.num_blocks, cfg.decoder.intermediate_dim) == (1280, 12, 5120)
    assert (cfg.decoder.n_fft, cfg.decoder.hop_length, cfg.decoder.upsample) == (1280, 320, 2)


def test_shapes_and_lengths(tiny: Tokenizer) -> None:
    x = speechlike(1.0)
    enc = tiny.encode(x)
    assert enc.latents.shape == (1, 25, 32) and enc.lengths.tolist() == [25]
    dec = tiny.decode(enc.latents)
    assert dec.audio.shape == (1, 16000) and dec.lengths.tolist() == [16000]
    # the shortest input: one frame; the injection's centred 1024-point STFT needs 513 samples to reflect-pad
    assert tiny.config.min_num_samples == 513 and tiny.encode(x[:513]).latents.shape[1] == 1
    with pytest.raises(ValueError, match="shorter than one 40 ms frame"):
        tiny.encode(x[:512])
    no_injection = make_tiny(config=tiny_config(injection={"enabled": False}))
    assert no_injection.config.min_num_samples == 480 and no_injection.encode(x[:480]).latents.shape[1] == 1
    assert tiny.config.num_frames(15999) == tiny.encode(x[:15999]).latents.shape[1] == 25


def test_padded_batch_equals_items_alone(tiny: Tokenizer) -> None:
    clips = [speechlike(2.3, seed=1), 0.001 * speechlike(0.9, seed=2), speechlike(1.61, seed=3)]
    t = max(len(c) for c in clips)
    batch = np.stack([np.pad(c, (0, t - len(c))) for c in clips])
    enc = tiny.encode(batch, lengths=[len(c) for c in clips], return_semantic=True)
    dec = tiny.decode(enc.latents, enc.lengths)
    for i, clip in enumerate(clips):
        alone = tiny.encode(clip, return_semantic=True)
        assert enc.semantic is not None and alone.semantic is not None
        n = int(alone.lengths[0])
        assert int(enc.lengths[i]) == n
        torch.testing.assert_close(enc.latents[i, :n], alone.latents[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(enc.semantic[i, :n], alone.semantic[0], rtol=0, atol=1e-5)
        assert torch.count_nonzero(enc.latents[i, n:]) == 0
        audio = tiny.decode(alone.latents).audio[0]
        assert int(dec.lengths[i]) == len(audio)
        torch.testing.assert_close(dec.audio[i, : len(audio)], audio, rtol=0, atol=1e-5)
        assert torch.count_nonzero(dec.audio[i, len(audio) :]) == 0


def test_padding_content_never_leaks(tiny: Tokenizer) -> None:
    clip = speechlike(1.0)
    a = np.stack([np.pad(clip, (0, 8000)), speechlike(1.5, seed=5)])
    b = a.copy()
    b[0, len(clip) :] = 0.9  # different garbage in the padding
    za = tiny.encode(a, lengths=[len(clip), a.shape[1]]).latents
    zb = tiny.encode(b, lengths=[len(clip), a.shape[1]]).latents
    assert torch.equal(za, zb)


def test_long_decode_in_windows_equals_one_shot() -> None:
    model = make_tiny()
    z = torch.randn(2, 1000, 32, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([1000, 613])
    whole = model.decode(z, lengths).audio
    model.decode_chunk_frames = 97
    windowed = model.decode(z, lengths).audio
    torch.testing.assert_close(windowed, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("block", [1, 7, 50])
def test_streaming_decode_equals_one_shot_with_bounded_buffer(block: int) -> None:
    model = make_tiny()
    z = torch.randn(2, 400, 32, generator=torch.Generator().manual_seed(1))
    whole = model.decode(z).audio
    stream = StreamingDecoder(model, block_frames=block)
    assert stream.push(z[:, :0]).shape == (2, 0)  # a live producer's empty piece: no audio, no error
    sizes = torch.randint(1, 40, (100,), generator=torch.Generator().manual_seed(2)).tolist()
    pieces, s, emitted, most = [], 0, 0, 0
    for size in sizes:
        piece = stream.push(z[:, s : s + size])
        s += size
        pieces.append(piece)
        emitted += piece.shape[1] // model.hop_length
        assert s - emitted < stream.latency_frames + size  # audio leaves once its context has arrived
        assert stream._buffer is not None  # set by every push
        most = max(most, stream._buffer.shape[1])
        if s >= 400:
            break
    pieces.append(stream.flush())
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-5)
    assert most < block + 2 * stream.context + 40  # one window, whatever the stream's length
    with pytest.raises(RuntimeError, match="after flush"):
        stream.push(z[:, :1])
    with pytest.raises(ValueError, match="block_frames must be a whole number >= 1, got 2.5"):
        StreamingDecoder(model, block_frames=2.5)  # type: ignore[arg-type]


def test_latent_statistics_take_arrays_and_name_a_wrong_width(tiny: Tokenizer) -> None:
    z = torch.randn(3, 32)
    assert torch.equal(tiny.normalize_latents(z.numpy()), tiny.normalize_latents(z))
    torch.testing.assert_close(tiny.denormalize_latents(tiny.normalize_latents(z.tolist())), z)
    with pytest.raises(ValueError, match=r"latents must be \(\.\.\., 32\) for this model, got shape \(3, 31\)"):
        tiny.normalize_latents(z[:, :31])


def test_several_minutes_encode_in_chunks_equal_whole() -> None:
    """3 minutes of audio: chunk groups of any size give the same latents (memory is bounded by max_chunks)."""
    model = make_tiny()
    x = speechlike(180.0, seed=7)
    whole = model.encode(x).latents
    assert whole.shape == (1, 4500, 32)
    model.encoder.max_chunks = 1
    torch.testing.assert_close(model.encode(x).latents, whole, rtol=0, atol=1e-6)
    # Chunks of 1008 mel frames are independent: a piece holding exactly the samples that the first chunk's
    # frames see (frame 1007 is centred at 1007 * 160 and reaches n_fft / 2 = 512 samples further in the
    # injection's front end, 256 in the encoder's) gives that chunk exactly.
    piece = model.encode(x[: 1007 * 160 + 512 + 1]).latents
    assert piece.shape[1] == 252
    torch.testing.assert_close(piece[0], whole[0, :252], rtol=0, atol=1e-5)


def test_audio_level_splitting_changes_only_the_chunk_that_holds_the_cut(tiny: Tokenizer) -> None:
    """Cutting the *audio* at a chunk boundary changes the last STFT frame before the cut (its window reflects at
    the cut instead of seeing the next samples), and through attention the tokens of that chunk only. The CLI and
    API never cut audio (the whole file's mel is computed, in exact blocks), so this concerns users who split
    files themselves."""
    x = speechlike(25.0, seed=3)
    whole = tiny.encode(x).latents[0]
    cut = 2 * 1008 * 160
    first = tiny.encode(x[:cut]).latents[0]
    assert first.shape[0] == 504
    torch.testing.assert_close(first[:252], whole[:252], rtol=0, atol=1e-5)  # chunk 0: unchanged
    deviation = (first[252:] - whole[252:504]).norm() / whole[252:504].norm()
    assert 0 < deviation < 0.05  # chunk 1 (holds the cut): a small change


def test_numpy_multichannel_and_resampled_input(tiny: Tokenizer) -> None:
    mono = speechlike(1.0)
    stereo = np.stack([mono, mono])[None]  # (1, 2, T)
    torch.testing.assert_close(tiny.encode(stereo).latents, tiny.encode(torch.from_numpy(mono)).latents)
    x44 = soxr.resample(mono, 16000, 44100, quality="VHQ")
    enc44 = tiny.encode(x44, sample_rate=44100)
    enc16 = tiny.encode(soxr.resample(x44, 44100, 16000, quality="VHQ"))
    assert enc44.lengths.tolist() == enc16.lengths.tolist() == [25]
    torch.testing.assert_close(enc44.latents, enc16.latents, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros(479, dtype=np.float32), "shorter than one 40 ms frame"),
        (np.full(16000, np.nan, dtype=np.float32), "NaN or Inf"),
        (np.zeros((2, 2, 2, 16000), dtype=np.float32), "must be"),
        (np.zeros((223950, 2), dtype=np.float32), r"reads as 223950 items of 2 samples.*wav\.T\[None\]"),
        (np.zeros(16000, dtype=np.uint64), "integer dtype torch.uint64"),
        (np.zeros(16000, dtype=np.complex64), "real numbers"),
    ],
)
def test_bad_audio_is_rejected_clearly(tiny: Tokenizer, bad: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        tiny.encode(bad)
    assert len(str(err.value)) < 300  # however large the input


def test_bad_sample_rate_and_empty_latents_are_rejected_clearly(tiny: Tokenizer) -> None:
    with pytest.raises(ValueError, match="sample_rate must be a positive number of Hz, got 0"):
        tiny.encode(np.zeros(16000, dtype=np.float32), sample_rate=0)
    with pytest.raises(ValueError, match=r"latents are empty \(shape \(1, 0, 32\)\)"):
        tiny.decode(torch.zeros(1, 0, tiny.latent_dim))


def test_messages_about_many_items_stay_short(tiny: Tokenizer) -> None:
    x = np.zeros((5000, 600), dtype=np.float32)
    x[::2, 7] = np.nan
    with pytest.raises(ValueError, match=r"items?\(s\) \[0, 2, 4, 6, 8, \.\.\. \(2500 in all\)\] contain NaN") as err:
        tiny.encode(x)
    assert len(str(err.value)) < 200


def test_integer_pcm_is_scaled_to_full_scale(tiny: Tokenizer) -> None:
    """int16/int32/int8/uint8 arrays, as soundfile and WAV files give them, encode as the float audio they stand for."""
    x = speechlike(1.0)
    expected = tiny.encode(x).latents
    for dtype, scale, offset in ((np.int16, 2**15, 0), (np.int32, 2**31, 0), (np.int8, 2**7, 0),
                                 (np.uint8, 2**7, 128)):
        pcm = np.round(x * scale + offset).clip(np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
        as_float = ((pcm.astype(np.float64) - offset) / scale).astype(np.float32)
        torch.testing.assert_close(tiny.encode(pcm).latents, tiny.encode(as_float).latents, rtol=0, atol=1e-6)
        torch.testing.assert_close(tiny.encode(torch.from_numpy(pcm)).latents, tiny.encode(as_float).latents,
                                   rtol=0, atol=1e-6)
    pcm16 = np.round(x * 2**15).astype(np.int16)
    torch.testing.assert_close(tiny.encode(pcm16).latents, expected, rtol=0, atol=1e-3 * float(expected.abs().max()))


def test_encoded_latents_can_feed_a_trainable_model(tiny: Tokenizer) -> None:
    z = tiny.encode(speechlike(1.0)).latents
    probe = torch.nn.Linear(32, 2)
    probe(z).sum().backward()  # would fail on inference-mode tensors
    assert probe.weight.grad is not None


def test_silent_and_clipped_audio_encode_to_finite_latents(tiny: Tokenizer) -> None:
    silent = tiny.encode(np.zeros(16000, dtype=np.float32)).latents
    clipped = tiny.encode(np.clip(10 * speechlike(1.0), -1, 1)).latents
    assert torch.isfinite(silent).all() and torch.isfinite(clipped).all()


def test_bad_latents_are_rejected(tiny: Tokenizer) -> None:
    with pytest.raises(ValueError, match="latents must be"):
        tiny.decode(torch.zeros(1, 10, 31))
    z = torch.zeros(1, 10, 32)
    z[0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        tiny.decode(z)
    with pytest.raises(ValueError, match="lengths"):
        tiny.decode(torch.zeros(1, 10, 32), lengths=[11])


def test_without_injection_latents_are_the_semantic_features() -> None:
    model = make_tiny(config=tiny_config(injection={"enabled": False}))
    assert model.injection is None
    enc = model.encode(speechlike(1.0), return_semantic=True)
    assert enc.semantic is not None
    assert torch.equal(enc.latents, enc.semantic)


def test_injection_adds_one_layernormed_linear_map_of_the_acoustic_patch(tiny: Tokenizer) -> None:
    """The release's injection: latents = semantic + LayerNorm(W patch + b), the patch a 128 x 4 block of the
    natural-log magnitude mel (n_fft 1024, hop 160), mel-major."""
    x = torch.from_numpy(speechlike(1.0))[None]
    feats = tiny.features(x)
    inj = tiny.injection
    assert inj is not None and inj.norm is not None and inj.front_end is not None
    with torch.no_grad():
        latents = tiny.inject(feats)
        expected = feats.semantic + torch.nn.functional.layer_norm(
            feats.patches @ inj.proj.weight.T + inj.proj.bias, (32,), inj.norm.weight, inj.norm.bias, 1e-5)
        mel = torch.log(inj.front_end.mel_spec(x).clamp(min=1e-7))  # (1, 128, 101)
    torch.testing.assert_close(latents, expected)
    assert feats.patches.shape == (1, 25, 128 * 4)
    torch.testing.assert_close(feats.patches[0, 3].view(128, 4), mel[0, :, 12:16])


def test_legacy_encoder_mel_injection_reads_the_encoders_patch() -> None:
    """dashtok/1 models: the encoder's BatchNorm'd 64 x 4 dB mel patch, no LayerNorm."""
    model = make_tiny(config=tiny_config(injection={"enabled": True, "front_end": "encoder_mel"}))
    x = torch.from_numpy(speechlike(1.0))[None]
    feats = model.features(x)
    assert model.injection is not None and model.injection.norm is None
    with torch.no_grad():
        mel = model.encoder.normalize(model.encoder.log_mel(x))
        expected = feats.semantic + feats.patches @ model.injection.proj.weight.T + model.injection.proj.bias
        torch.testing.assert_close(model.inject(feats), expected)
    assert feats.patches.shape == (1, 25, 64 * 4)
    torch.testing.assert_close(feats.patches[0, 3].view(64, 4), mel[0, 0, :, 12:16])


def test_gradients_reach_only_injection_and_decoder() -> None:
    model = make_tiny().train()
    x = torch.from_numpy(np.stack([speechlike(1.0, seed=1), speechlike(1.0, seed=2)]))
    feats = model.features(x)
    audio = model.synthesize(model.inject(feats), feats.lengths)
    audio.square().mean().backward()
    assert not model.encoder.training
    for name, p in model.named_parameters():
        if name.startswith("encoder."):
            assert p.grad is None, name
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_calling_the_model_reconstructs_and_outputs_take_keys(tiny: Tokenizer) -> None:
    x = speechlike(1.0)
    enc = tiny.encode(x)
    expected = tiny.decode(enc.latents, enc.lengths)
    out = tiny(x)
    assert torch.equal(out.audio, expected.audio) and torch.equal(out.lengths, expected.lengths)
    assert out["audio"] is out.audio and enc["latents"] is enc.latents and enc.keys() == ["latents", "lengths",
                                                                                           "semantic"]
    with pytest.raises(KeyError):
        enc["audio"]
    assert "latents" in enc and "audio" not in enc and list(out) == ["audio", "lengths"]


def test_one_padded_item_under_the_batch_db_scope_floors_as_upstream() -> None:
    """Under top_db_scope="batch" a padded item's dB floor comes from its padded mel (upstream's batched call);
    under "example" from the item alone: each equals the padded-batch path of its scope."""
    from conftest import make_tiny, tiny_config

    x = torch.from_numpy(np.pad(speechlike(1.3), (0, 9000)))[None]
    lengths = torch.tensor([20800])
    for scope in ("batch", "example"):
        model = make_tiny(config=tiny_config(frontend={**tiny_config().frontend.__dict__, "top_db_scope": scope}))
        with torch.no_grad():
            batched = model.inject(model.features(x, lengths))
        torch.testing.assert_close(model.encode(x, lengths).latents, batched, rtol=0, atol=1e-6)


def test_short_clips_at_a_low_rate_are_not_taken_for_frames_by_channels(tiny: Tokenizer) -> None:
    """600 items of 300 samples at 8 kHz are 600 samples each at 16 kHz: a batch, not a (frames, channels) array."""
    enc = tiny.encode(np.stack([speechlike(300 / 8000, seed=i, sr=8000) for i in range(600)]), sample_rate=8000)
    assert enc.latents.shape[0] == 600
