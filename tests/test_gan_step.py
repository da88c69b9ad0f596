"""The cost levers of the GAN step (issue 13) change what is computed, not what is learned where they promise so:
the frozen generator pass gives the generator the same update without discriminator weight gradients, the
discriminators' windows are the segment's own samples, and the bf16 path stays finite with float32 audio out."""

from dataclasses import replace

import torch

from conftest import make_tiny, speechlike
from dashtok.tokenizer import Features
from dashtok.train.config import TokenizerStageConfig
from dashtok.train.discriminators import Discriminators, PeriodDiscriminator, frozen, windows
from dashtok.train.tokenizer_stage import Generator, disc_crop, train_step

SEGMENT = 8  # latent frames: 5120 samples


def setup(autocast: str = "fp32", seed: int = 0) -> tuple[Generator, Discriminators, torch.optim.Optimizer,
                                                          torch.optim.Optimizer, Features, torch.Tensor]:
    model = make_tiny(seed).train()
    torch.manual_seed(seed)
    disc = Discriminators()
    hop = model.hop_length
    wav = torch.from_numpy(speechlike(1.0, seed=seed))
    feats = model.features(torch.stack([wav, wav.roll(4000)]))
    real = torch.stack([wav, wav.roll(4000)])[:, : SEGMENT * hop]
    feats = Features(feats.semantic[:, :SEGMENT].detach(), feats.patches[:, :SEGMENT].detach(),
                     torch.full((2,), SEGMENT))
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt_g = torch.optim.AdamW(trainable, lr=1e-3, betas=(0.8, 0.9))
    opt_d = torch.optim.AdamW(disc.parameters(), lr=1e-3, betas=(0.8, 0.9))
    return Generator(model, autocast), disc, opt_g, opt_d, feats, real


def test_frozen_pass_computes_input_gradients_only() -> None:
    disc = Discriminators()
    x = torch.randn(2, 4000, requires_grad=True)
    with frozen(disc):
        outs = disc(x)
        sum(logits.mean() for logits, _ in outs).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the generator still learns through the discriminators
    assert all(p.grad is None for p in disc.parameters())  # no weight gradient was computed
    assert all(p.requires_grad for p in disc.parameters())  # and they train again afterwards


def test_frozen_generator_pass_gives_the_same_update() -> None:
    """disc_frozen_in_gen only skips work: generator and discriminator weights after a GAN step are unchanged."""
    results = []
    for frozen_d in (False, True):
        gen_net, disc, opt_g, opt_d, feats, real = setup()
        t = replace(TokenizerStageConfig(), autocast="fp32", disc_frozen_in_gen=frozen_d, disc_reuse_real=False)
        train_step(gen_net, disc, opt_g, opt_d, feats, real, t, use_gan=True, grad_clip=1.0)
        results.append((gen_net.state_dict(), disc.state_dict()))
    for a, b in zip(results[0], results[1], strict=True):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-7, msg=key)


def test_disc_crop_takes_consecutive_samples_of_each_segment() -> None:
    t = replace(TokenizerStageConfig(), disc_crop_seconds=0.16)  # 2560 of 5120 samples
    real = torch.arange(3 * 5120, dtype=torch.float32).view(3, 5120)
    index = disc_crop(torch.Generator().manual_seed(1), real.shape, t)
    assert index is not None and index.shape == (3, 2560)
    again = disc_crop(torch.Generator().manual_seed(1), real.shape, t)
    assert again is not None and torch.equal(index, again)  # a function of the step's generator: resumable
    crops = windows(real, index)
    for row, crop in zip(real, crops, strict=True):
        start = int(crop[0] - row[0])
        assert 0 <= start <= 5120 - 2560 and torch.equal(crop, row[start : start + 2560])
    assert disc_crop(torch.Generator(), real.shape, replace(t, disc_crop_seconds=0.32)) is None  # whole segment
    assert disc_crop(torch.Generator(), real.shape, replace(t, disc_crop_seconds=0.0)) is None
    assert windows(real, None) is real


def test_bf16_gan_step_is_finite_with_float32_audio() -> None:
    gen_net, disc, opt_g, opt_d, feats, real = setup("bf16")
    t = replace(TokenizerStageConfig(), autocast="bf16", disc_crop_seconds=0.16)
    fake, spectrum = gen_net(feats.semantic, feats.patches)
    assert fake.dtype == torch.float32 and fake.shape == real.shape  # the iSTFT head stays float32
    assert spectrum.dtype == torch.complex64
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, features = disc(real)[0]
    assert logits.dtype == torch.bfloat16 and features[0].dtype == torch.bfloat16  # the discriminators run in bf16
    before = {k: v.clone() for k, v in gen_net.state_dict().items()}
    for step in range(2):
        crop = disc_crop(torch.Generator().manual_seed(step), real.shape, t)
        logged = train_step(gen_net, disc, opt_g, opt_d, feats, real, t, use_gan=True, grad_clip=1.0, crop=crop)
        assert all(torch.isfinite(torch.tensor(v)) for v in logged.values()), logged
    assert all(p.dtype == torch.float32 for p in gen_net.parameters())  # master weights stay float32
    changed = [k for k, v in gen_net.state_dict().items() if not torch.equal(v, before[k])]
    assert any("injection" in k for k in changed) and any("decoder" in k for k in changed)


def test_period_discriminator_is_hifigans_2d_layout() -> None:
    """The 1-d evaluation of the period discriminators computes HiFi-GAN's (k, 1) 2-d convolutions exactly."""
    import torch.nn.functional as F

    disc = Discriminators()
    x = torch.randn(3, 5003)
    for d in disc.mpd:
        assert isinstance(d, PeriodDiscriminator)
        pad = (-x.shape[1]) % d.period
        h = F.pad(x, (0, pad), mode="reflect").view(3, 1, -1, d.period)
        feats2d = []
        for conv in d.convs:
            h = F.leaky_relu(conv(h), 0.1)
            feats2d.append(h)
        logits, feats = d(x)
        torch.testing.assert_close(logits, d.post(h).flatten(1), rtol=1e-5, atol=1e-6)
        for f1, f2 in zip(feats, feats2d, strict=True):  # (B * p, C, L) against (B, C, L, p)
            torch.testing.assert_close(f1, f2.permute(0, 3, 1, 2).flatten(0, 1), rtol=1e-5, atol=1e-6)


def test_complex_spectrum_discriminators_see_phase_that_magnitudes_hide() -> None:
    """x and -x have the same STFT magnitudes: the magnitude discriminators cannot tell them apart, the complex ones
    (real and imaginary parts in) can."""
    torch.manual_seed(0)
    x = torch.from_numpy(speechlike(0.64, seed=1))[None].float()
    for complex_spectra in (False, True):
        disc = Discriminators(complex_spectra=complex_spectra)
        a, b = (torch.cat([d(s)[0].flatten() for d in disc.mrd]) for s in (x, -x))
        assert torch.allclose(a, b, atol=1e-5) != complex_spectra
