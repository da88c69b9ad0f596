"""Stage 4: speech enhancement in latent space, trained on the corpus mixtures (noisy speech, its clean source).

The clean target of a mixture is its clean clip times the mixture's render gain (mixtures that would have clipped
were scaled down as a whole). ``enhance.extra_mixtures`` adds pairs mixed at the start of the run from the training
clips (``dashtok.data.mixtures.draw_mixtures``). Latents of both, normalised per channel, are cached once; the loss is
the MSE between enhanced and clean latents on random crops (``enhance.kind = "flow"``: the flow-matching loss of the
clean latents given the noisy ones, "enhance/flow"), and for the regression with ``enhance.loss_weights`` "mel/l1" /
"stft/l1" also losses on what is heard: the enhanced latents decoded by the frozen tokenizer against the clean audio.
With ``data.valid_manifests``, every ``eval_every`` steps the validation mixtures are enhanced end to end (audio in,
audio out, rendered as ``dashtok enhance`` renders them: ``LatentEnhancer.enhance``'s default) and scored against
their clean targets (PESQ-WB, STOI) into ``eval.csv``, the noisy input's scores beside them: the curve that says when
training has flattened.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dashtok import metrics
from dashtok.data.manifest import mixture_pairs, spread
from dashtok.data.mixtures import draw_mixtures, load_pairs
from dashtok.generate.enhance import EnhancerConfig, LatentEnhancer
from dashtok.generate.tied import Tie
from dashtok.masking import lengths_to_mask
from dashtok.precision import autocast_for
from dashtok.tokenizer import Tokenizer
from dashtok.train.config import TrainConfig
from dashtok.train.data import batch_generator, weighted_crops
from dashtok.train.losses import mel_loss, stft_loss
from dashtok.train.run import Run, device_for, log_progress, optimizer_step, resolve_autocast, say, wrap_ddp


def _mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in ("pesq_wb", "stoi")
            if any(k in r for r in rows)}


def validate(model: LatentEnhancer, tokenizer: Tokenizer, pairs: list[tuple[np.ndarray, np.ndarray]]
             ) -> dict[str, float]:
    """Mean PESQ-WB and STOI of the enhanced validation mixtures against their clean targets."""
    model.eval()
    rows = [metrics.speech_scores(clean, model.enhance(tokenizer, noisy), tokenizer.sample_rate)
            for noisy, clean in pairs]
    model.train()
    return _mean_scores(rows)


def run_enhance(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Path:
    torch.manual_seed(cfg.seed)
    device = device_for(rank)
    run = Run(cfg.out, rank)
    e = cfg.enhance
    precision = resolve_autocast("enhance", e.autocast, device, rank)
    tokenizer = Tokenizer.from_pretrained(e.tokenizer or None).eval()
    model = LatentEnhancer(EnhancerConfig(tokenizer.latent_dim, e.dim, e.depth, e.heads, e.kind, e.sample_steps),
                           Tie.to(tokenizer))
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    step = run.resume({"enhancer": model}, {"opt": opt}, "enhance")
    t0 = time.perf_counter()
    tokenizer.requires_grad_(False)  # frozen; with losses on audio, gradients pass through its decoder
    if e.hears:  # decoding on the enhancer's device (the cache is then encoded there too)
        tokenizer.to(device)
    hop = tokenizer.hop_length
    noisy_z: list[torch.Tensor] = []
    clean_z: list[torch.Tensor] = []
    clean_audio: list[torch.Tensor] = []  # with e.hears: the clean target, n_frames * hop samples

    def add(noisy: np.ndarray, clean: np.ndarray) -> None:
        if len(noisy) >= tokenizer.config.min_num_samples:
            noisy_z.append(tokenizer.normalize_latents(tokenizer.encode(noisy).latents[0]).cpu())
            clean_z.append(tokenizer.normalize_latents(tokenizer.encode(clean).latents[0]).cpu())
            if e.hears:
                n = len(clean_z[-1]) * hop
                clean_audio.append(torch.from_numpy(np.pad(clean, (0, max(0, n - len(clean))))[:n].copy()))

    for noisy, clean in load_pairs(mixture_pairs(cfg.data.manifests), tokenizer.sample_rate):
        add(noisy, clean)
    corpus_pairs = len(noisy_z)
    if e.extra_mixtures:
        for noisy, clean in draw_mixtures(cfg.data.manifests[0], e.extra_mixtures, cfg.seed):
            add(noisy, clean)
    if not noisy_z:
        raise ValueError("no (mixture, clean) pairs found in the manifests")
    frames = np.array([len(z) for z in noisy_z])
    say(rank, f"enhance: {len(noisy_z)} noisy/clean pairs ({corpus_pairs} from the corpus, "
               f"{len(noisy_z) - corpus_pairs} drawn) cached in {time.perf_counter() - t0:.0f} s; "
               f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    valid: list[tuple[np.ndarray, np.ndarray]] = []
    inputs: dict[str, float] = {}
    if cfg.data.valid_manifests:  # rank 0 validates: the mixtures spread over the manifests, long enough to encode
        pairs = mixture_pairs(cfg.data.valid_manifests)
        if not pairs:
            raise ValueError(f"no (mixture, clean) pairs in data.valid_manifests {list(cfg.data.valid_manifests)}")
        if rank == 0:
            valid = [(noisy, clean) for noisy, clean in load_pairs(spread(pairs, cfg.data.max_valid_clips),
                                                                   tokenizer.sample_rate)
                     if len(noisy) >= tokenizer.config.min_num_samples]
            tokenizer.to(device)  # after the cache: validating does not change what is trained
            inputs = {f"input/{k}": v for k, v in _mean_scores(
                [metrics.speech_scores(clean, noisy, tokenizer.sample_rate) for noisy, clean in valid]).items()}
            say(rank, f"enhance: {len(valid)} validation mixtures, the noisy input scores "
                      + ", ".join(f"{k.split('/')[1]} {v}" for k, v in inputs.items()))
    net = wrap_ddp(model, world)
    per_rank = cfg.batch_size // world
    t0 = time.perf_counter()
    while step < cfg.steps:
        if stopped := run.out_of_time(cfg, t0, step, {"enhancer": model}, {"opt": opt}, world, model, "enhance"):
            return stopped
        gen = batch_generator(cfg.seed, step, rank)
        picks = weighted_crops(frames, per_rank, e.segment_frames, gen)
        lengths = torch.tensor([len(noisy_z[i][start : start + e.segment_frames]) for i, start in picks])
        x = torch.zeros(per_rank, int(lengths.max()), tokenizer.latent_dim)
        y = torch.zeros_like(x)
        target = torch.zeros(per_rank, x.shape[1] * hop) if e.hears else None  # the clean audio of each crop
        for j, ((i, start), n) in enumerate(zip(picks, lengths.tolist(), strict=True)):
            x[j, :n], y[j, :n] = noisy_z[i][start : start + n], clean_z[i][start : start + n]
            if target is not None:
                target[j, : n * hop] = clean_audio[i][start * hop : (start + n) * hop]
        mask = lengths_to_mask(lengths, x.shape[1]).to(device)
        with autocast_for(precision, device):  # the loss itself is float32
            objective, enhanced = model.loss(x.to(device), y.to(device), mask, gen, net)
        terms = {"enhance/flow" if e.kind == "flow" else "enhance/mse": objective}
        if target is not None and enhanced is not None:  # what is heard: the enhanced latents through the frozen
            # decoder against the clean audio (regression only: the config refuses audio losses for a flow enhancer)
            with autocast_for(precision, device):  # the decoder's blocks; its head's iSTFT is float32 regardless
                heard = tokenizer.synthesize(tokenizer.denormalize_latents(enhanced), lengths.to(device)).float()
            target = target.to(device)
            terms["mel/l1"] = mel_loss(target, heard)
            terms["stft/l1"] = stft_loss(target, heard, e.stft_resolutions)
        loss = sum((w * terms[k] for k, w in e.loss_weights.items()), torch.zeros((), device=device))
        grad_norm = optimizer_step(opt, loss, model, cfg, step)
        step += 1
        log_progress(run, cfg, step, t0, "enhance", "enhance/loss", loss, grad_norm, opt.param_groups[0]["lr"],
                     terms)
        if rank == 0 and valid and (step % cfg.eval_every == 0 or step == cfg.steps):
            run.log({"step": step, **validate(model, tokenizer, valid), **inputs}, name="eval.csv")
        if step % cfg.save_every == 0 or step == cfg.steps:
            run.checkpoint(step, {"enhancer": model}, {"opt": opt}, world, model)
    final = run.out / "enhancer.safetensors"
    if rank == 0:
        model.save(final, training={"trained": True, "stage": "enhance", "steps": cfg.steps, "seed": cfg.seed,
                                    "tokenizer": tokenizer.model_id, "pairs": len(noisy_z),
                                    "corpus_pairs": corpus_pairs})
    return final
