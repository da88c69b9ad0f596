"""Cost of one training step of the tokenizer stage (issue 13): mel-only and GAN steps of a training config, timed
on the same batch, today's recipe against a baseline commit and against each lever on its own.

    python benchmarks/train_step.py [--config configs/tokenizer_small.toml] [--baseline a06a2d7] [--threads 2]

Every (variant, round) runs in a fresh process (the baseline from ``git archive`` of its commit, the others from this
tree); the variants of a round run one after the other and each round rotates their order, so slow phases of a
shared machine fall on all of them. A process builds the model from the bundled checkpoint (its encoder, injection
and decoder; the weights do not change the cost), fresh discriminators and the optimizers of ``run_tokenizer``, then
times ``--steps`` steps after ``--warmup`` untimed ones. The table gives the median over all timed steps of all
rounds and writes ``benchmarks/cpu_2core/train_step.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# name -> (code, GAN step?, tokenizer-stage overrides). "off" = every lever off: the old work in today's code (whose
# period discriminators run their (k, 1) kernels as 1-d convolutions, the same function).
LEVERS_OFF = {"disc_crop_seconds": 0.0, "disc_reuse_real": False, "disc_frozen_in_gen": False, "autocast": "fp32"}
VARIANTS: dict[str, tuple[str, bool, dict[str, Any]]] = {
    "baseline mel-only": ("baseline", False, {}),
    "baseline GAN": ("baseline", True, {}),
    "levers off, GAN": ("current", True, LEVERS_OFF),
    "+ crop 0.64 s only": ("current", True, {**LEVERS_OFF, "disc_crop_seconds": 0.64}),
    "+ reuse real features only": ("current", True, {**LEVERS_OFF, "disc_reuse_real": True}),
    "+ frozen D in G pass only": ("current", True, {**LEVERS_OFF, "disc_frozen_in_gen": True}),
    "+ bf16 autocast only": ("current", True, {**LEVERS_OFF, "autocast": "bf16"}),
    "default mel-only": ("current", False, {}),
    "default GAN (all levers)": ("current", True, {}),
}


def make_batch(config: str, path: Path, seed: int) -> dict[str, Any]:
    """One training batch (features of the frozen encoder + the audio), saved for every worker to load."""
    import numpy as np
    import torch

    from dashtok import Tokenizer
    from dashtok.train.config import TrainConfig
    from dashtok.train.data import AudioBank, batch_generator
    FeatureCache = tokenizer_stage().FeatureCache  # noqa: N806

    cfg = TrainConfig.load(config)
    model = Tokenizer.from_pretrained().train()
    manifest = Path(cfg.data.manifests[0]) if cfg.data.manifests else None
    if manifest is not None and manifest.is_file():
        from dashtok.audio_io import load_audio
        from dashtok.data.manifest import read_manifest

        rows = read_manifest(manifest)
        picks = np.random.default_rng(seed).choice(len(rows), size=min(64, len(rows)), replace=False)
        clips = [load_audio(manifest.parent / rows[i].path, 16000) for i in sorted(picks)]
        source = f"{len(clips)} random clips of {manifest}"
    else:
        from dashtok.bench import test_signal

        clips = [test_signal(3.0, i) for i in range(16)]
        source = f"synthetic test signals ({manifest} not found)"
    cache = FeatureCache(model, AudioBank([str(i) for i in range(len(clips))], clips), cfg.tokenizer.segment_frames)
    feats, real = cache.batch(batch_generator(seed, 0), cfg.batch_size, cfg.tokenizer.segment_frames,
                              model.hop_length)
    torch.save({"semantic": feats.semantic, "patches": feats.patches, "real": real}, path)
    return {"source": source, "batch_size": cfg.batch_size, "segment_frames": cfg.tokenizer.segment_frames,
            "segment_seconds": real.shape[1] / 16000}


def tokenizer_stage():  # type: ignore[no-untyped-def]
    """The module holding the tokenizer stage: ``train/tokenizer_stage.py`` now, ``train/loop.py`` at a06a2d7."""
    try:
        from dashtok.train import tokenizer_stage as module
    except ImportError:
        from dashtok.train import loop as module
    return module


def worker(args: argparse.Namespace) -> None:
    """Times ``args.steps`` steps of one variant; prints one JSON line with the seconds of each."""
    import torch

    torch.set_num_threads(args.threads)
    from dataclasses import replace

    from dashtok import Tokenizer
    from dashtok.tokenizer import Features
    from dashtok.train.config import TrainConfig
    from dashtok.train.discriminators import Discriminators

    loop = tokenizer_stage()
    code, gan, changes = VARIANTS[args.worker]
    if code == "baseline":  # the baseline's config knows no levers: drop them from the file
        import tomllib

        with open(args.config, "rb") as f:
            d = tomllib.load(f)
        d["tokenizer"] = {k: v for k, v in d.get("tokenizer", {}).items() if k not in LEVERS_OFF}
        cfg = TrainConfig.from_dict(d)
    else:
        cfg = TrainConfig.load(args.config, {f"tokenizer.{k}": v for k, v in changes.items()})
        autocast = loop.training_autocast(cfg.tokenizer.autocast, torch.device("cpu"))  # "auto" -> bf16 | fp32
        cfg = replace(cfg, tokenizer=replace(cfg.tokenizer, autocast=autocast))
    batch = torch.load(args.batch)
    torch.manual_seed(0)
    model = Tokenizer.from_pretrained().train()
    disc = Discriminators()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt_g = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(0.8, 0.9), weight_decay=cfg.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.tokenizer.disc_lr, betas=(0.8, 0.9))
    gen_net = loop.Generator(model) if code == "baseline" else loop.Generator(model, cfg.tokenizer.autocast)
    lengths = torch.full((batch["real"].shape[0],), batch["real"].shape[1] // 640)
    feats = Features(batch["semantic"], batch["patches"], lengths)
    real = batch["real"]
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        if code == "baseline":
            loop.train_step(gen_net, disc, opt_g, opt_d, feats, real, cfg.tokenizer.loss_weights, gan, cfg.grad_clip)
        else:
            crop = loop.disc_crop(torch.Generator().manual_seed(i), real.shape, cfg.tokenizer)
            loop.train_step(gen_net, disc, opt_g, opt_d, feats, real, cfg.tokenizer, gan, cfg.grad_clip, crop)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"variant": args.worker, "times": times}))


def extract(rev: str, dest: Path) -> Path:
    """``src/`` of commit ``rev``, unpacked under ``dest``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True).stdout
    tar = dest / "src.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    return dest / "src"


def load_now() -> str:
    """What else runs on the machine: load average and the busiest other processes."""
    out = subprocess.run(["ps", "-eo", "pcpu,args", "--sort=-pcpu"], capture_output=True, text=True).stdout
    busy = [line.strip()[:90] for line in out.splitlines()[1:] if float(line.split()[0]) > 20][:3]
    return f"load {os.getloadavg()[0]:.2f}; busy: " + ("; ".join(busy) or "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/tokenizer_small.toml", help="training config (batch, segment)")
    parser.add_argument("--baseline", default="a06a2d7", help="git commit of the baseline code")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every worker")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per variant")
    parser.add_argument("--only", nargs="*", default=None, help="variants to run (default: all)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "cpu_2core" / "train_step"),
                        help="output stem (.md and .json are written)")
    parser.add_argument("--note", default="", help="what else ran on the machine, for the table")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--batch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    variants = args.only or list(VARIANTS)
    with tempfile.TemporaryDirectory() as tmp:
        batch = Path(tmp) / "batch.pt"
        info = make_batch(args.config, batch, seed=0)
        srcs = {"current": ROOT / "src", "baseline": extract(args.baseline, Path(tmp))}
        times: dict[str, list[float]] = {v: [] for v in variants}
        loads = []
        for r in range(args.rounds):
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            for v in order:
                env = {**os.environ, "PYTHONPATH": str(srcs[VARIANTS[v][0]]), "OMP_NUM_THREADS": str(args.threads)}
                cmd = [sys.executable, __file__, "--worker", v, "--batch", str(batch), "--config", args.config,
                       "--threads", str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup)]
                res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
                if res.returncode:
                    raise SystemExit(f"{v}: worker failed\n{res.stderr}")
                times[v] += json.loads(res.stdout.strip().splitlines()[-1])["times"]
                loads.append(load_now())
                print(f"round {r} {v}: {statistics.median(times[v]):.3f} s ({loads[-1]})", flush=True)
    write(args, info, times, loads)


NOTES = """
What each row runs (all GAN rows: the discriminator step, then the generator step with mel L1 + hinge + feature
matching; the mel-only rows: the generator step with the mel loss alone):

- **baseline**: `train_step` of the baseline commit, run from its own `src/` (`git archive`).
- **levers off**: today's code doing the baseline's work: discriminators on the whole segment, float32, the real
  audio through the discriminators again (no grad) for feature matching, discriminator weight gradients computed
  in the generator pass. The one change that is always on: the period discriminators run their (k, 1) kernels as
  1-d convolutions over the period's columns (the same function and state dict; `tests/test_gan_step.py`).
- **crop** (`tokenizer.disc_crop_seconds = 0.64`): the discriminators judge a random 0.64 s window of each 1.28 s
  segment (the same window for real and fake; drawn from the step's seeded generator, so resume stays exact);
  the mel loss keeps the whole segment.
- **reuse** (`tokenizer.disc_reuse_real = true`): feature matching uses the real-audio features of the
  discriminator step (computed before its update) instead of a third discriminator pass.
- **frozen** (`tokenizer.disc_frozen_in_gen = true`): discriminator parameters have `requires_grad=False` during
  the generator pass: its backward computes input gradients only. The generator's update is unchanged.
- **bf16** (`tokenizer.autocast = "bf16"`): CPU autocast (AVX-512 BF16 here) over the decoder blocks and the
  discriminators' convolutions; the injection, the head's spectrum and iSTFT, the discriminators' STFTs and all
  losses stay float32, as do the weights and the optimizer.
- **default**: all four levers (the defaults of `TokenizerStageConfig` and `configs/tokenizer_small.toml`; since
  `autocast = "auto"`, bf16 only on CPUs with bf16 hardware, float32 elsewhere).
"""


def write(args: argparse.Namespace, info: dict[str, Any], times: dict[str, list[float]], loads: list[str]) -> None:
    import torch

    med = {v: statistics.median(t) for v, t in times.items()}
    base = med.get("baseline GAN")
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    head = (f"`python benchmarks/train_step.py --threads {args.threads}` at {rev} (+ uncommitted changes if any; "
            f"baseline {args.baseline}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    lines = [
        "# Cost of one tokenizer training step (issue 13)", "", head, "",
        f"- config `{args.config}`: batch {info['batch_size']} x {info['segment_seconds']:.2f} s "
        f"({info['segment_frames']} latent frames); data: {info['source']}",
        f"- torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()} "
        f"(CPU capability {torch.backends.cpu.get_cpu_capability()}); "
        f"{args.rounds} fresh processes per variant, {args.warmup} warm-up + {args.steps} timed steps each; "
        "median of all timed steps",
        f"- contention: {args.note or 'see loads in the JSON'}", "",
        "| variant | median s/step | min | max | GAN step vs baseline |", "|---|---|---|---|---|",
    ]
    for v, t in times.items():
        ratio = f"{base / med[v]:.2f}x cheaper" if base and VARIANTS[v][1] else ""
        lines.append(f"| {v} | {med[v]:.3f} | {min(t):.3f} | {max(t):.3f} | {ratio} |")
    lines.append(NOTES)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    Path(args.out + ".json").write_text(json.dumps({"info": info, "threads": args.threads, "times": times,
                                                    "median": med, "loads": loads, "note": args.note}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
