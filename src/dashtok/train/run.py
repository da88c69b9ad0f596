"""What every training stage shares: the run folder (resumable checkpoints, logs), the learning-rate schedule, the
optimizer step, and the DDP machinery (device, wrapping, rank agreement).

A run folder holds ``config.toml``, ``metrics.csv``/``eval.csv``, ``samples/`` (reconstructions and spectrograms)
and ``checkpoints/step-N/`` (weights in safetensors, optimizer/step/RNG in ``train_state.pt``), each written to a
temporary folder and renamed into place, with ``checkpoints/latest`` naming the newest complete one. Killing a run
at any moment and starting the same command again continues it bit for bit.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from dashtok import metrics
from dashtok.atomic import atomic_write
from dashtok.codec import Codec, reconstruct
from dashtok.data.recordings import REAL_SPEECH_SOURCES
from dashtok.precision import native_bf16
from dashtok.train.config import TrainConfig
from dashtok.train.data import SAMPLE_RATE, AudioBank


class Run:
    """The output folder of one run; only rank 0 writes."""

    def __init__(self, out: str | Path, rank: int = 0) -> None:
        self.out = Path(out)
        self.rank = rank
        self.ckpts = self.out / "checkpoints"
        if rank == 0:
            self.ckpts.mkdir(parents=True, exist_ok=True)

    def latest(self) -> Path | None:
        pointer = self.ckpts / "latest"
        if not pointer.is_file():
            return None
        path = self.ckpts / pointer.read_text().strip()
        return path if path.is_dir() else None

    def step_dir(self, step: int) -> Path:
        """The checkpoint folder of ``step``."""
        return self.ckpts / f"step-{step:07d}"

    def save(self, step: int, tensors: dict[str, dict[str, torch.Tensor]], state: dict[str, Any],
             keep: int = 2) -> None:
        if self.rank != 0:
            return
        final = self.step_dir(step)
        tmp = self.ckpts / f".tmp-step-{step:07d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, sd in tensors.items():
            save_file({k: v.detach().cpu().contiguous() for k, v in sd.items()}, str(tmp / f"{name}.safetensors"))
        torch.save(state, tmp / "train_state.pt")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        pointer_tmp = self.ckpts / ".latest.partial"
        pointer_tmp.write_text(final.name)
        os.replace(pointer_tmp, self.ckpts / "latest")
        for old in sorted(self.ckpts.glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def resume(self, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], label: str) -> int:
        """Load the newest checkpoint into ``modules`` and ``optimizers`` (and the RNG); the step to continue from."""
        latest = self.latest()
        if latest is None:
            return 0
        for name, module in modules.items():
            module.load_state_dict(load_file(str(latest / f"{name}.safetensors")), strict=True)
        state = torch.load(latest / "train_state.pt", weights_only=False)
        for name, opt in optimizers.items():
            opt.load_state_dict(state[name])
        _set_rng_state(state["rng"])
        say(self.rank, f"{label}: resumed from {latest} at step {state['step']}")
        return int(state["step"])

    def checkpoint(self, step: int, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                   world: int, trained: nn.Module) -> None:
        """Save weights, optimizers, step and RNG; with DDP, first check that every rank holds the same weights."""
        sums = rank_checksums(trained, world)
        self.save(step, {name: m.state_dict() for name, m in modules.items()},
                  {**{name: o.state_dict() for name, o in optimizers.items()}, "step": step, "rng": _rng_state(),
                   "rank_checksums": sums})

    def out_of_time(self, cfg: TrainConfig, t0: float, step: int, modules: dict[str, nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], world: int, trained: nn.Module,
                    label: str) -> Path | None:
        """Past ``cfg.max_minutes`` of the loop that started at ``t0``: save the step reached (unless it was just
        saved) and say so; the checkpoint to return instead of an export, or None while time is left."""
        if not cfg.max_minutes or time.perf_counter() - t0 <= 60 * cfg.max_minutes:
            return None
        latest = self.latest()
        if latest != self.step_dir(step):
            self.checkpoint(step, modules, optimizers, world, trained)
        say(self.rank, f"{label}: stopped at step {step} after max_minutes={cfg.max_minutes}; the same command "
                       "continues the run")
        return self.step_dir(step)

    def log(self, row: dict[str, Any], name: str = "metrics.csv") -> None:
        if self.rank != 0:
            return
        path = self.out / name
        header: list[str] = []
        if path.exists():
            with path.open(newline="") as f:
                header = next(csv.reader(f), [])
        if header and set(row) <= set(header):  # the file's column order, whatever the row's
            with path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=header, restval="").writerow(row)
            return
        # a new file, or a row with columns the file lacks (a measure added since the run began, as the phase
        # errors were): the file is rewritten with every column, so no later row lands under another's header
        old: list[dict[str, str]] = []
        if header:
            with path.open(newline="") as f:
                old = list(csv.DictReader(f))
        fields = header + [k for k in row if k not in header]
        with atomic_write(path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows([*old, row])


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module, cfg: TrainConfig,
                   step: int) -> float:
    """The update of the single-optimizer stages (MAE, flow, enhance): scheduled lr, backward, clipping, step.
    Returns the gradient norm before clipping."""
    for group in opt.param_groups:
        group["lr"] = cfg.lr * lr_factor(step, cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
    opt.step()
    return float(grad_norm)


def log_progress(run: Run, cfg: TrainConfig, step: int, t0: float, label: str, key: str, loss: torch.Tensor,
                 grad_norm: float, lr: float, terms: dict[str, torch.Tensor] | None = None) -> None:
    """Every ``log_every`` steps (and at the last): a metrics.csv row and one console line (with ``terms``, each term
    of a weighted loss too)."""
    if step % cfg.log_every and step != cfg.steps:
        return
    values = {key: float(loss.detach()), **{k: float(v.detach()) for k, v in (terms or {}).items() if k != key}}
    run.log({"step": step, "seconds": round(time.perf_counter() - t0, 1), **values, "grad_norm": grad_norm,
             "lr": lr})
    say(run.rank, f"{label}: step {step} " + " ".join(f"{k} {v:.4f}" for k, v in values.items()))


M = TypeVar("M", bound=nn.Module)


class EMA(Generic[M]):
    """An exponential moving average of a module's trainable weights, kept in a frozen copy of the module (buffers
    and frozen weights are the module's own at the time of the copy: they do not train)."""

    def __init__(self, module: M, decay: float) -> None:
        self.decay = decay
        self.module: M = copy.deepcopy(module).eval()
        self._pairs = [(e, p) for e, p in zip(self.module.parameters(), module.parameters(), strict=True)
                       if p.requires_grad]
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the weights after update number ``step`` (0-based). The decay ramps up as (1 + step) / (10 + step)
        until it reaches ``decay``, so that the average forgets the random initialisation within the first few
        hundred steps instead of the first few thousand (TensorFlow's ExponentialMovingAverage with num_updates)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        for average, weight in self._pairs:
            average.lerp_(weight.detach(), 1 - decay)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10 % at ``cfg.steps`` (or constant: ``cfg.schedule``)."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def setup_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if world > 1 else (0, 1)


def device_for(rank: int) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
        return torch.device("cuda")
    return torch.device("cpu")


def wrap_ddp(module: nn.Module, world: int) -> nn.Module:
    return nn.parallel.DistributedDataParallel(module) if world > 1 else module


def rank_checksums(module: nn.Module, world: int) -> list[float]:
    """A checksum of the trainable weights from every rank; DDP must keep them identical, so we check it."""
    params = [p.detach().double().flatten() for p in module.parameters() if p.requires_grad]
    mine = torch.cat(params)
    mine = mine.mul(torch.arange(1, mine.numel() + 1, dtype=torch.float64, device=mine.device) % 7 + 1)
    value = mine.sum().reshape(1)  # on the weights' device: NCCL gathers CUDA tensors only
    if world == 1:
        return [float(value)]
    gathered = [torch.zeros_like(value) for _ in range(world)]
    dist.all_gather(gathered, value)
    sums = [float(g) for g in gathered]
    if len(set(sums)) != 1:
        raise RuntimeError(f"DDP ranks diverged: weight checksums {sums}")
    return sums


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(cfg)))


def say(rank: int, msg: str) -> None:
    if rank == 0:
        print(msg, flush=True)


def training_autocast(name: str, device: torch.device) -> str:
    """A stage's ``autocast`` setting on ``device``: "auto" is bf16 where bf16 runs in hardware (``native_bf16``),
    else fp32; "fp32" and "bf16" stay what they are (``resolve_autocast`` warns of an emulated bf16)."""
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return name


def resolve_autocast(stage: str, configured: str, device: torch.device, rank: int) -> str:
    """``training_autocast``, said once at the start of a run (with a warning where bf16 would be emulated)."""
    precision = training_autocast(configured, device)
    cpu = device.type == "cpu"
    say(rank, f"{stage}: autocast {precision} (configured '{configured}'; {device.type}"
              f"{', CPU capability ' + torch.backends.cpu.get_cpu_capability() if cpu else ''})")
    if precision == "bf16" and not native_bf16(device):
        what = f" ({torch.backends.cpu.get_cpu_capability()})" if cpu else ""
        say(rank, f"{stage}: warning: {stage}.autocast = 'bf16' on a {device.type} without bf16 hardware{what}: "
                  f"emulated, many times slower than 'fp32' or 'auto'")
    return precision


def evaluate(model: Codec, bank: AudioBank, out_dir: Path | None = None) -> dict[str, float]:
    """Reconstruction measures on the validation clips (PESQ-WB/STOI on speech clips only, also apart for real human
    speech, ``<key>/real``, and synthetic speech, ``<key>/synthetic``), and the artifact tone of all of them
    (``metrics.artifact_tone``, dB; ``artifact_tone_0hz_db``: the DC offset's), and on speech the magnitude-weighted
    phase errors (rad) on the head's STFT grid (``losses.phase_losses``: instantaneous phase, group delay,
    instantaneous frequency; the last two are what a decoder can learn, the first stays near chance even in good
    vocoders); with ``out_dir``, the first three clips and their reconstructions (WAV + spectrogram PNG) go there."""
    from dashtok.train.losses import phase_losses

    decoder = getattr(getattr(model, "config", None), "decoder", None)
    grid = (decoder.n_fft, decoder.hop_length) if decoder is not None else (1280, 320)
    model.eval()
    rows: dict[str, list[float]] = {"mel_distance": [], "si_sdr": [], "pesq_wb": [], "stoi": []}
    phase: dict[str, list[float]] = {}  # logged after the older measures (columns of runs begun before them)
    spectra = metrics.AverageSpectrum(), metrics.AverageSpectrum()  # inputs, reconstructions
    for i in range(len(bank)):
        x = bank.audio(i)
        if len(x) < model.min_num_samples:
            continue
        y = reconstruct(model, x)
        spectra[0].add(x)
        spectra[1].add(y)
        speech = bank.domains[i] == "speech"
        kind = "real" if bank.sources[i] in REAL_SPEECH_SOURCES else "synthetic"
        for key, value in metrics.reconstruction_scores(x, y, SAMPLE_RATE, speech).items():
            rows[key].append(value)
            if speech and key in ("pesq_wb", "stoi"):
                rows.setdefault(f"{key}/{kind}", []).append(value)
        if speech and len(x) > grid[0]:
            with torch.no_grad():
                errors = phase_losses(torch.from_numpy(x)[None], torch.from_numpy(y)[None], *grid)
            for name, error in errors.items():
                phase.setdefault(name, []).append(float(error))
        if out_dir is not None and i < 3:
            _save_sample(out_dir, bank.names[i], x, y)
    model.train()
    scores = {k: round(float(np.mean(v)), 4) for k, v in {**rows, **phase}.items() if v}
    if spectra[0].frames:
        scores["artifact_tone_db"] = metrics.artifact_tone(*spectra, sample_rate=SAMPLE_RATE)["db"]
        scores["artifact_tone_0hz_db"] = metrics.dc_tone_db(*spectra)
    return scores


def _save_sample(out_dir: Path, name: str, x: np.ndarray, y: np.ndarray) -> None:
    from dashtok.audio_io import write_audio
    from dashtok.plots import spectrograms

    stem = Path(name).name.replace(":", "_")
    write_audio(out_dir / f"{stem}.orig.wav", x, SAMPLE_RATE)
    write_audio(out_dir / f"{stem}.recon.wav", y, SAMPLE_RATE)
    spectrograms(out_dir / f"{stem}.png", x, y, stem)
