"""Stage 2, ``tokenizer``: the paper's recipe. The encoder is frozen (its outputs and the injection's input
patches are computed once and cached); the injection layer and the Vocos decoder train with a multi-resolution mel
L1, then with the hinge losses of multi-period and multi-resolution discriminators plus feature matching. The
shipped checkpoint carries the per-channel latent statistics of the training data and the run's record."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch
from torch import nn

from dashtok.checkpoint import FORMAT, LEGACY_FORMATS, load_encoder, read_metadata
from dashtok.config import DecoderConfig, dataclass_from_dict
from dashtok.precision import autocast_for
from dashtok.release import official_dir
from dashtok.tokenizer import Features, Tokenizer
from dashtok.train.config import TokenizerStageConfig, TrainConfig
from dashtok.train.data import SAMPLE_RATE, AudioBank, batch_generator
from dashtok.train.discriminators import Discriminators, frozen, windows
from dashtok.train.features import FeatureCache
from dashtok.train.losses import (
    PHASE_TERMS,
    consistency_loss,
    dc_loss,
    disc_hinge,
    feature_matching,
    gen_hinge,
    mel_loss,
    phase_losses,
    stft_loss,
)
from dashtok.train.run import (
    EMA,
    Run,
    config_dict,
    device_for,
    evaluate,
    lr_factor,
    resolve_autocast,
    say,
    training_autocast,
    wrap_ddp,
)


class Generator(nn.Module):
    """The trainable path (injection -> decoder -> head) as one module, so DDP can wrap it.

    ``autocast`` ("fp32" | "bf16") applies to the decoder blocks only: the injection stays float32 (it makes the
    latents, which the shipped model computes in float32) and the head's spectrum and iSTFT always are.
    """

    def __init__(self, model: Tokenizer, autocast: str = "fp32") -> None:
        super().__init__()
        self.model = model
        self.autocast = autocast

    def forward(self, semantic: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> audio (B, T) and the head's complex spectrum (B, F, L) it was made from, both float32."""
        lengths = torch.full((semantic.shape[0],), semantic.shape[1], dtype=torch.long, device=semantic.device)
        latents = self.model.inject(Features(semantic, patches, lengths))
        with autocast_for(training_autocast(self.autocast, latents.device), latents.device):
            return self.model.render(latents)


def disc_crop(gen: torch.Generator, shape: torch.Size, t: TokenizerStageConfig) -> torch.Tensor | None:
    """(B, L) sample indices of the random window of each segment that the discriminators see, drawn from the
    step's generator (so a resumed run draws the same); None when ``t.disc_crop_seconds`` covers the segment."""
    b, n = shape
    length = round(t.disc_crop_seconds * SAMPLE_RATE)
    if length == 0 or length >= n:
        return None
    starts = torch.randint(0, n - length + 1, (b, 1), generator=gen)
    return starts + torch.arange(length)


def train_step(gen_net: nn.Module, disc: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               feats: Features, real: torch.Tensor, t: TokenizerStageConfig, use_gan: bool, grad_clip: float,
               crop: torch.Tensor | None = None) -> dict[str, float]:
    """One step: the discriminators first (on detached fakes), then the generator. Returns the logged metrics.

    real: (B, T) audio; crop: (B, L) indices of the window the discriminators see (:func:`disc_crop`; None: all).
    ``t.loss_weights`` are keyed by the logged metric names; ``t`` also holds the cost levers (issue 13).
    """
    fake, spectrum = gen_net(feats.semantic, feats.patches)  # (B, T), (B, F, L) float32
    nan = float("nan")  # GAN metrics before the discriminators join: logged as empty, columns stay aligned
    out: dict[str, float] = {"adv/disc": nan, "adv/gen": nan, "adv/feat": nan}
    losses = {"mel/l1": mel_loss(real, fake)}  # the whole segment, float32
    if t.loss_weights.get("stft/l1", 0.0):
        losses["stft/l1"] = stft_loss(real, fake, t.stft_resolutions)
    phase_terms = [k for k in PHASE_TERMS if t.loss_weights.get(k, 0.0)]
    if phase_terms:
        phase = phase_losses(real, fake, *t.phase_resolution)
        losses.update({k: phase[k] for k in phase_terms})
    if t.loss_weights.get("head/consistency", 0.0):
        losses["head/consistency"] = consistency_loss(spectrum, fake)
    if t.loss_weights.get("dc/l1", 0.0):
        losses["dc/l1"] = dc_loss(real, fake, *t.phase_resolution)
    if use_gan:
        real_w, fake_w = windows(real, crop), windows(fake, crop)  # (B, L)
        precision = training_autocast(t.autocast, real.device)
        with autocast_for(precision, real.device):
            real_out = disc(real_w)
            d_loss = disc_hinge(real_out, disc(fake_w.detach()))
        out["adv/disc"] = _update(opt_d, d_loss, disc, grad_clip)[0]
        # The generator pass calls the bare module: its discriminator gradients (if any) are never synchronised.
        plain = disc.module if isinstance(disc, nn.parallel.DistributedDataParallel) else disc
        with autocast_for(precision, real.device), frozen(plain, t.disc_frozen_in_gen):
            if not t.disc_reuse_real:  # else the real features of the D step (before its update) are reused
                with torch.no_grad():
                    real_out = plain(real_w)
            fake_out = plain(fake_w)
        losses["adv/gen"] = gen_hinge(fake_out)
        losses["adv/feat"] = feature_matching(real_out, fake_out)
    total: torch.Tensor = sum(t.loss_weights[k] * v for k, v in losses.items())  # type: ignore[assignment]
    out["total"], out["grad_norm"] = _update(opt_g, total, gen_net, grad_clip)
    out.update({k: float(v.detach()) for k, v in losses.items()})
    return out


def _update(opt: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module, grad_clip: float) -> tuple[float, float]:
    """Backward, clip, step; (loss, gradient norm before clipping)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    opt.step()
    return float(loss.detach()), float(grad_norm)


def _decoder(t: TokenizerStageConfig, base: DecoderConfig) -> DecoderConfig:
    """``base`` with ``t.decoder_overrides`` applied (unknown keys refused by name)."""
    if not t.decoder_overrides:
        return base
    values = {**asdict(base), **t.decoder_overrides}
    ints = {f.name for f in fields(DecoderConfig) if f.type in (int, "int")}
    return dataclass_from_dict(DecoderConfig, {k: int(v) if k in ints else v for k, v in values.items()},
                               "tokenizer.decoder_overrides")


def load_across_heads(model: Tokenizer, state: dict[str, torch.Tensor], phase: str, source: str) -> None:
    """Strict-load ``state`` into ``model``; where the model's head makes its phase otherwise than the state's
    (``decoder.phase``), everything but the head loads, the head takes the state's log-magnitude rows, and its phase
    rows keep their initialisation (said on stderr)."""
    if phase == model.config.decoder.phase:
        model.load_state_dict(state, strict=True)
        return
    own = model.state_dict()
    model.load_state_dict({**{k: v for k, v in state.items() if not k.startswith("head.out.")},
                           "head.out.weight": own["head.out.weight"], "head.out.bias": own["head.out.bias"]},
                          strict=True)
    model.head.adopt_magnitude(state["head.out.weight"], state["head.out.bias"])
    print(f"tokenizer: {source} has the {phase!r} head, this run the {model.config.decoder.phase!r} one: its "
          f"magnitude rows are taken, the phase rows start from their initialisation", file=sys.stderr)


def build_tokenizer(cfg: TrainConfig) -> Tokenizer:
    t = cfg.tokenizer
    decoder = _decoder(t, DecoderConfig.preset(t.decoder_preset))
    init = Path(t.init)
    if init.suffix == ".pt":
        return Tokenizer.from_dasheng(init, decoder=decoder, injection=t.injection, name=t.name)
    official = official_dir(t.init)  # an official-layout directory, its cache folder or a hub id, else None
    source = init / "encoder.safetensors" if init.is_dir() else init
    if official is not None or read_metadata(source).get("format") in (FORMAT, *LEGACY_FORMATS):
        # a tokenizer: dashtok's, or the official release (its encoder frozen; with warm_start the whole model,
        # injection and decoder included, is the starting point, e.g. to fine-tune the decoder on a new domain)
        donor = Tokenizer.from_official(official) if official is not None else Tokenizer.load(source)
        if t.warm_start:
            if t.injection != donor.config.injection.enabled:
                raise ValueError(f"tokenizer.injection={t.injection} but the warm start {t.init} has injection "
                                 f"{donor.config.injection.enabled}")
            model = Tokenizer(replace(donor.config, name=t.name, decoder=_decoder(t, donor.config.decoder)))
            load_across_heads(model, donor.state_dict(), donor.config.decoder.phase, t.init)
            return model
        return Tokenizer.with_encoder(donor.encoder, decoder, t.injection, t.name)
    if t.warm_start:
        raise ValueError("tokenizer.warm_start needs tokenizer.init to be a tokenizer (dashtok checkpoint or the "
                         "official layout)")
    return Tokenizer.with_encoder(load_encoder(source), decoder, t.injection, t.name)


def freeze_what_stays(model: Tokenizer, t: TokenizerStageConfig) -> Tokenizer:
    """The injection too, with ``t.freeze_injection`` (the encoder always is): call it before the optimizer and the
    moving average collect the trainable weights."""
    if t.freeze_injection and model.injection is not None:
        model.injection.requires_grad_(False)
    return model


def build_discriminators(t: TokenizerStageConfig) -> Discriminators:
    return Discriminators(period_channels=t.disc_period_channels, complex_spectra=t.disc_complex)


def build_optimizers(model: Tokenizer, disc: Discriminators, cfg: TrainConfig
                     ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """AdamW for the trainable path (injection + decoder) and for the discriminators."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt_g = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(0.8, 0.9), weight_decay=cfg.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.tokenizer.disc_lr, betas=(0.8, 0.9),
                              weight_decay=cfg.weight_decay)
    if cfg.tokenizer.phase_lr_scale != 1.0:
        scale_phase_steps(opt_g, model.head.out, model.head.num_bins, cfg.tokenizer.phase_lr_scale)
    return opt_g, opt_d


def scale_phase_steps(opt: torch.optim.Optimizer, out: nn.Linear, rows: int, scale: float) -> None:
    """Make every step of ``opt`` move the phase rows of the head's output layer (those past the first ``rows``, the
    log-magnitudes) ``scale`` times as far (for AdamW, whose step does not depend on the gradient's scale, the same
    as ``scale`` times the learning rate there)."""
    before: list[torch.Tensor] = []

    def remember(*_: object) -> None:
        before[:] = [out.weight.detach()[rows:].clone(), out.bias.detach()[rows:].clone()]

    def stretch(*_: object) -> None:
        with torch.no_grad():
            for param, old in zip((out.weight, out.bias), before, strict=True):
                param[rows:] = old + scale * (param[rows:] - old)

    opt.register_step_pre_hook(remember)
    opt.register_step_post_hook(stretch)


def run_tokenizer(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Path:
    torch.manual_seed(cfg.seed)
    device = device_for(rank)
    run = Run(cfg.out, rank)
    t = replace(cfg.tokenizer, autocast=resolve_autocast("tokenizer", cfg.tokenizer.autocast, device, rank))
    precision = t.autocast
    model = freeze_what_stays(build_tokenizer(cfg), t).to(device).train()
    disc = build_discriminators(t).to(device)
    opt_g, opt_d = build_optimizers(model, disc, cfg)
    ema = EMA(model, t.ema_decay) if t.ema_decay else None
    modules: dict[str, nn.Module] = {"model": model, "disc": disc, **({"ema": ema.module} if ema else {})}
    step = run.resume(modules, {"opt_g": opt_g, "opt_d": opt_d}, "tokenizer")
    if t.freeze_injection and step == 0 and not t.warm_start:
        raise ValueError("tokenizer.freeze_injection keeps the injection a run starts from: start from a trained "
                         "tokenizer (tokenizer.warm_start, or --resume-from a packed one), not a new injection")
    valid = AudioBank.from_config(cfg.data, valid=True) if cfg.data.valid_manifests else None
    t_cache = time.perf_counter()
    cache = feature_cache(model, cfg, rank)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    injection = "frozen" if t.freeze_injection else "on" if t.injection else "off"
    where = f"on disk ({cfg.data.feature_cache})" if cfg.data.feature_cache else "in memory"
    say(rank, f"tokenizer: {len(cache.frames)} clips, {cache.hours:.2f} h, features cached {where} in "
               f"{time.perf_counter() - t_cache:.0f} s; {n_train / 1e6:.2f} M trainable parameters "
               f"(injection {injection}); {device.type}, autocast {precision}")
    gen_net, disc_net = wrap_ddp(Generator(model, t.autocast), world), wrap_ddp(disc, world)
    per_rank = cfg.batch_size // world
    t0 = time.perf_counter()
    while step < cfg.steps:
        if stopped := run.out_of_time(cfg, t0, step, modules, {"opt_g": opt_g, "opt_d": opt_d}, world, model,
                                      "tokenizer"):
            return stopped
        gen = batch_generator(cfg.seed, step, rank)
        feats, real = cache.batch(gen, per_rank, t.segment_frames, model.hop_length)
        crop = disc_crop(gen, real.shape, t)
        feats = Features(feats.semantic.to(device), feats.patches.to(device), feats.lengths.to(device))
        for opt, base in ((opt_g, cfg.lr), (opt_d, t.disc_lr)):
            for group in opt.param_groups:
                group["lr"] = base * lr_factor(step, cfg)
        logged = train_step(gen_net, disc_net, opt_g, opt_d, feats, real.to(device), t,
                            use_gan=step >= t.gan_start, grad_clip=cfg.grad_clip, crop=crop)
        if ema is not None:
            ema.update(step)
        step += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            run.log({"step": step, "seconds": round(time.perf_counter() - t0, 1), "lr": opt_g.param_groups[0]["lr"],
                     **{k: round(v, 5) for k, v in sorted(logged.items())}})
            say(rank, f"tokenizer: step {step} " + " ".join(f"{k} {v:.4f}" for k, v in sorted(logged.items())))
        if step % cfg.save_every == 0 or step == cfg.steps:
            run.checkpoint(step, modules, {"opt_g": opt_g, "opt_d": opt_d}, world, model)
        if rank == 0 and valid is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            samples = run.out / "samples" / f"step-{step:07d}"
            scores = evaluate(model, valid, samples)
            if ema is not None:  # the average is what ships; the raw weights' scores stay for comparison
                scores.update({f"ema/{k}": v for k, v in evaluate(ema.module, valid, samples / "ema").items()})
            run.log({"step": step, **scores}, name="eval.csv")
            say(rank, f"tokenizer: eval at step {step}: {scores}")
    final = run.out / "model.safetensors"
    if rank == 0:
        export(ema.module if ema is not None else model, cache, cfg, final, cache.hours, valid)
    return final


def feature_cache(model: Tokenizer, cfg: TrainConfig, rank: int = 0) -> FeatureCache:
    """The training clips' frozen features: on disk where ``data.feature_cache`` names a folder, else in memory."""
    t = cfg.tokenizer
    if cfg.data.feature_cache:
        return FeatureCache.on_disk(model, cfg.data, Path(cfg.data.feature_cache), t.segment_frames, t.gain_db,
                                    rank)
    return FeatureCache(model, AudioBank.from_config(cfg.data), t.segment_frames, t.gain_db)


def set_latent_statistics(model: Tokenizer, cache: FeatureCache) -> None:
    """``latent_mean``/``latent_std``: per channel, over every frame of the cached training clips at their own level
    (level 0 of the cache); what ``normalize_latents`` uses and generators and enhancers train on."""
    model.eval()
    total = torch.zeros(model.latent_dim, dtype=torch.float64)
    squares = torch.zeros(model.latent_dim, dtype=torch.float64)
    n = 0
    with torch.no_grad():  # clip by clip, summed in float64: memory stays one clip whatever the corpus
        for s, p in zip(cache.semantic, cache.patches, strict=True):
            lat = model.inject(Features(s[:1].to(model.device), p[:1].to(model.device),
                                        torch.tensor([s.shape[1]], device=model.device)))[0].cpu().double()
            total += lat.sum(0)
            squares += lat.square().sum(0)
            n += lat.shape[0]
        mean = total / n
        var = (squares - n * mean.square()) / max(n - 1, 1)  # unbiased, as torch.std
        model.latent_mean.copy_(mean.float())
        model.latent_std.copy_(var.clamp(min=0).sqrt().float().clamp(min=1e-5))


def export(model: Tokenizer, cache: FeatureCache, cfg: TrainConfig, path: Path, hours: float,
           valid: AudioBank | None) -> None:
    """The shipped checkpoint: weights, per-channel latent statistics of the training data (with a frozen injection,
    the starting model's, as its latents are), and the record."""
    if not cfg.tokenizer.freeze_injection:
        set_latent_statistics(model, cache)
    record = {"trained": True, "stage": "tokenizer", "steps": cfg.steps, "seed": cfg.seed,
              "weights": "exponential moving average" if cfg.tokenizer.ema_decay else "last step",
              "data_hours": round(hours, 3), "command": " ".join(sys.argv), "config": config_dict(cfg),
              "final_eval": evaluate(model, valid) if valid is not None else {}}
    model.save(path, training=record)
