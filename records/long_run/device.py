"""Carry the long run's GAN stage to a lent accelerator for a few minutes and bring its weights back.

The device machine takes at most 64 MiB of working tree and returns at most 8 files of 16 MiB, so the run travels as a
bundle: the packed state (``dashtok train CONFIG --pack``: averaged weights + discriminators; the frozen encoder in
float32, the trained weights in float16, which the run takes up again in float32), a subset of the corpus's training
clips as FLAC (a random subset: the whole split does not fit) and the wheels that machine lacks. There the run is
restored at the packed step and goes on with the config's own schedule and batches (a function of seed and step, drawn
from the subset) for a wall-clock budget, in one or two stretches: the first stretch's averaged weights come back in
float16, the last's in float32 (a tokenizer file in 15 MiB parts), with the discriminators and the training log. The
tracked tree itself must fit too: the checkpoints that git tracks travel unless they are untracked for the call
(README).

    python records/long_run/device.py bundle src/dashtok/assets/default.safetensors \
        --disc records/long_run/phase_stage.disc.safetensors --corpus data/corpus --mb 31
    # on the device, with gpu_bundle and .whl carried (the command: records/long_run/README.md):
    python records/long_run/device.py run --minutes 7 --out $OUT        # 2 parts; --parts 1 to go on, machine warm
    python records/long_run/device.py join FILES_AT records/long_run/gan_gpu.safetensors

Everything here only moves files and calls ``dashtok.train.state`` (pack, restore) and ``dashtok train``; no training
logic of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dashtok import Tokenizer
from dashtok.data.manifest import Clip, read_manifest, write_manifest
from dashtok.data.recordings import REAL_SPEECH_SOURCES
from dashtok.train.__main__ import main as train_main
from dashtok.train.__main__ import parse_set
from dashtok.train.config import TrainConfig
from dashtok.train.state import disc_path, pack, restore

HERE = Path(__file__).resolve().parent
BUNDLE = Path("gpu_bundle")
CONFIG = "configs/tokenizer_long_gan.toml"
FROZEN = "encoder."
PART = 15 * 2**20


def bundle(packed: Path, corpus: Path, mb: float, part: int = 0, disc: Path | None = None) -> None:
    """``gpu_bundle/``: the packed state with its trained weights in float16, and FLAC clips of the corpus's train
    split up to ``mb`` MB, taken in a fixed shuffled order (by clip id hash): a random subset, every domain in about
    its share of the whole (the run's ``data.domain_shares`` still weigh the draws). ``part`` k > 0 fills from the clips
    that parts 0..k-1 left, so that successive calls train on disjoint subsets instead of the same one again."""
    disc = disc or disc_path(packed)
    shutil.rmtree(BUNDLE, ignore_errors=True)
    (BUNDLE / "corpus").mkdir(parents=True)
    with safe_open(str(packed), "pt") as f:
        metadata = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    small = {k: v if k.startswith(FROZEN) or not v.is_floating_point() else v.half() for k, v in state.items()}
    save_file(small, str(BUNDLE / "state.safetensors"), metadata=metadata)
    shutil.copy(disc, BUNDLE / "state.disc.safetensors")
    clips = read_manifest(corpus / "train.jsonl")

    left = sorted(clips, key=lambda c: hashlib.sha256(c.id.encode()).hexdigest())
    for _ in range(part + 1):  # each part fills greedily from the clips the earlier parts left
        budget = mb * 1e6
        kept: list[Clip] = []
        rest: list[Clip] = []
        for c in left:
            size = (corpus / c.path).stat().st_size
            (kept if size <= budget else rest).append(c)
            budget -= size if size <= budget else 0
        left = rest
    if not kept:
        raise SystemExit(f"part {part} of {mb} MB subsets is past the end of {corpus / 'train.jsonl'}")
    for c in kept:
        (BUNDLE / "corpus" / c.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus / c.path, BUNDLE / "corpus" / c.path)
    write_manifest(BUNDLE / "corpus" / "train.jsonl", kept)
    hours: dict[str, float] = {}
    for c in kept:
        hours[c.domain] = hours.get(c.domain, 0.0) + c.duration / 3600
    real = sum(c.duration for c in kept if c.source in REAL_SPEECH_SOURCES) / 3600
    total = sum(c.duration for c in clips) / 3600
    summary = {"clips": len(kept), "of": len(clips), "hours": round(sum(hours.values()), 3),
               "of_hours": round(total, 3), "hours_by_domain": {k: round(v, 3) for k, v in sorted(hours.items())},
               "real_speech_hours": round(real, 3), "packed": str(packed),
               "disc": str(disc), "part": part,
               "step": json.loads(metadata["training"])["steps"]}
    (BUNDLE / "bundle.json").write_text(json.dumps(summary, indent=1) + "\n")
    mib = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file()) / 2**20
    print(f"{BUNDLE}: {mib:.1f} MiB; {json.dumps(summary)}")


def overrides(minutes: float, arm: str = "", extra: tuple[str, ...] = ()) -> list[str]:
    """The run as configured, but on the bundle's clips, without validation (the scoring is done back home), and
    stopping after ``minutes`` of training; an ``arm`` of an A/B trains in its own folder with its ``extra``
    overrides (``KEY=VALUE`` as ``dashtok train --set`` takes them) after these."""
    folder = f"runs/gpu_gan_{arm}" if arm else "runs/gpu_gan"
    return [f"out=\"{folder}\"", f"data.manifests=[\"{BUNDLE}/corpus/train.jsonl\"]", "data.valid_manifests=[]",
            f"tokenizer.init=\"{BUNDLE}/init.safetensors\"", "eval_every=1000000000", "save_every=1000",
            "threads=8", f"max_minutes={minutes}", *extra]


def run(minutes: float, out: Path, parts: int, arm: str = "", extra: tuple[str, ...] = ()) -> None:
    """On the device: restore the bundle's state (unless the machine still holds the run folder from an earlier call),
    then train ``minutes`` in ``parts`` stretches, packing after each: the last comes back in float32 (``final.*``),
    one before it (``parts`` = 2) in float16 (``half.fp16.safetensors``)."""
    if parts not in (1, 2):
        raise SystemExit("--parts is 1 or 2 (what the device returns fits one float32 model and one float16 one)")
    with safe_open(str(BUNDLE / "state.safetensors"), "pt") as f:  # the carried bundle replaces an earlier init
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        save_file({k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()},
                  str(BUNDLE / "init.safetensors"), metadata=f.metadata())
    shutil.copy(BUNDLE / "state.disc.safetensors", BUNDLE / "init.disc.safetensors")
    sets = overrides(minutes / parts, arm, extra)
    cfg = TrainConfig.load(CONFIG, parse_set(sets))
    started = (Path(cfg.out) / "checkpoints" / "latest").is_file()
    if not started:
        print(restore(cfg, BUNDLE / "init.safetensors"))
    for part in range(parts):
        last = part == parts - 1
        if train_main([CONFIG, "--set", *sets]):
            raise SystemExit("training failed")
        packed = BUNDLE / ("final.safetensors" if last else "half.safetensors")
        print(pack(cfg, packed))
        if not last:
            trained = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(packed)).items()
                       if not k.startswith(FROZEN)}
            with safe_open(str(packed), "pt") as f:
                save_file(trained, str(out / "half.fp16.safetensors"), metadata=f.metadata())
    data = (BUNDLE / "final.safetensors").read_bytes()
    for i in range(0, len(data), PART):
        (out / f"final.part{i // PART}").write_bytes(data[i : i + PART])
    shutil.copy(disc_path(BUNDLE / "final.safetensors"), out / "final.disc.safetensors")
    if (Path(cfg.out) / "metrics.csv").is_file():
        shutil.copy(Path(cfg.out) / "metrics.csv", out / "metrics.csv")


def join(files: Path, dest: Path, base: Path) -> None:
    """Back home: ``final.part*`` -> ``dest`` (+ its discriminators); ``half.fp16.safetensors`` -> ``dest`` with
    ``.half`` before the suffix, its trained weights in float32 again and the frozen encoder from ``base``."""
    parts = sorted(files.glob("final.part*"), key=lambda p: int(p.name.removeprefix("final.part")))
    dest.write_bytes(b"".join(p.read_bytes() for p in parts))
    shutil.copy(files / "final.disc.safetensors", disc_path(dest))
    final = Tokenizer.load(dest)  # strict: a broken join fails here
    half = files / "half.fp16.safetensors"
    if half.is_file():
        model = Tokenizer.load(base)
        with safe_open(str(half), "pt") as f:
            record = json.loads(f.metadata()["training"])
            trained = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118
        model.load_state_dict(model.state_dict() | trained, strict=True)
        record["weights"] += " (carried back in float16)"
        model.save(dest.with_name(dest.stem + ".half.safetensors"), training=record)
    print(f"{dest}: step {final.training_record['steps']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle")
    b.add_argument("packed", type=Path)
    b.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    b.add_argument("--mb", type=float, default=31.0, help="MB of FLAC clips")
    b.add_argument("--part", type=int, default=0,
                   help="which disjoint subset of that size (0: the first; disjoint for the same --mb and train.jsonl)")
    b.add_argument("--disc", type=Path, help="the discriminators (default: beside the packed file)")
    r = sub.add_parser("run")
    r.add_argument("--minutes", type=float, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--parts", type=int, default=2, help="stretches of training, each packed (1 or 2)")
    r.add_argument("--arm", default="", help="an A/B arm's name: its own run folder (runs/gpu_gan_ARM)")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="the arm's overrides of the run's config, e.g. 'lr=2e-4'")
    j = sub.add_parser("join")
    j.add_argument("files", type=Path)
    j.add_argument("dest", type=Path)
    j.add_argument("--base", type=Path, default=HERE.parents[1] / "src/dashtok/assets/default.safetensors",
                   help="gives the frozen encoder")
    args = parser.parse_args()
    if args.command == "bundle":
        bundle(args.packed, args.corpus, args.mb, args.part, args.disc)
    elif args.command == "run":
        args.out.mkdir(parents=True, exist_ok=True)
        run(args.minutes, args.out, args.parts, args.arm, tuple(args.set))
    else:
        join(args.files, args.dest, args.base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
