"""Quality per step of the GAN-step levers (issue 13): short runs at equal steps, same seed, data and schedule.

    python benchmarks/gan_ab.py [--steps 100] [--eval-every 25] [--arms reference default ...]

Every arm warm-starts from the same tokenizer checkpoint (``--init``, the bundled default: 2000 mel-only + 1000 GAN
steps) with fresh discriminators, and trains ``--steps`` GAN steps of ``configs/tokenizer_small.toml`` (batch 16 x
1.28 s) on the same subset of the training corpus, evaluating the validation clips every ``--eval-every`` steps
(mel distance on all, PESQ-WB / STOI on the speech among them). The arms differ only in the levers. Writes
``benchmarks/cpu_2core/gan_ab.{md,json}`` from the runs' ``eval.csv`` and ``metrics.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OFF = {"disc_crop_seconds": 0.0, "disc_reuse_real": False, "disc_frozen_in_gen": False, "autocast": "fp32"}
ARMS: dict[str, dict[str, Any]] = {
    "reference": OFF,  # the a06a2d7 recipe: whole segment, float32, real features recomputed, D weight grads in G pass
    "default": {},  # every lever on (the new defaults)
    "fp32": {"autocast": "fp32"},  # all levers but bf16
    "no-crop": {"disc_crop_seconds": 0.0},  # all levers but the crop
}


def subset(corpus: Path, every: int) -> Path:
    """Every ``every``-th row of the training manifest, beside it (paths in a manifest are relative to it)."""
    rows = (corpus / "train.jsonl").read_text().splitlines()
    out = corpus / f"train_every{every}.jsonl"
    out.write_text("\n".join(rows[::every]) + "\n")
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="*", default=["reference", "default"], choices=list(ARMS),
                        help="which arms to run, in order")
    parser.add_argument("--steps", type=int, default=100, help="GAN steps per arm")
    parser.add_argument("--eval-every", type=int, default=25, help="validation every N steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--corpus", default="data/corpus", help="corpus folder (dashtok data build)")
    parser.add_argument("--every", type=int, default=4, help="train on every N-th training clip")
    parser.add_argument("--init", default="src/dashtok/assets/default.safetensors", help="tokenizer to start from")
    parser.add_argument("--runs", default="runs/gan_ab", help="run folders")
    parser.add_argument("--out", default="benchmarks/cpu_2core/gan_ab", help="output stem (.md, .json)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table from existing runs")
    args = parser.parse_args()
    manifest = subset(Path(args.corpus), args.every)
    wall = {}
    for arm in [] if args.report_only else args.arms:
        sets = {"out": f"{args.runs}/{arm}", "steps": args.steps, "warmup": 10, "log_every": 10,
                "save_every": args.steps, "eval_every": args.eval_every, "threads": args.threads,
                "data.manifests": [str(manifest)], "tokenizer.init": args.init, "tokenizer.warm_start": True,
                "tokenizer.gan_start": 0, **{f"tokenizer.{k}": v for k, v in ARMS[arm].items()}}
        cmd = [sys.executable, "-m", "dashtok.train", "configs/tokenizer_small.toml", "--set",
               *[f"{k}={json.dumps(v)}" for k, v in sets.items()]]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall[arm] = round(time.perf_counter() - t0, 1)
        print(f"{arm}: {wall[arm]} s", flush=True)
    report(args, wall)


def report(args: argparse.Namespace, wall: dict[str, float]) -> None:
    runs = {arm: Path(args.runs) / arm for arm in ARMS if (Path(args.runs) / arm / "eval.csv").is_file()}
    evals = {arm: read_csv(path / "eval.csv") for arm, path in runs.items()}
    train = {arm: read_csv(path / "metrics.csv") for arm, path in runs.items()}
    lines = ["# GAN-step levers: quality at equal steps (issue 13)", "",
             f"`python benchmarks/gan_ab.py --steps {args.steps} --eval-every {args.eval_every} --threads "
             f"{args.threads}`: each arm warm-starts from `{args.init}` with fresh discriminators and trains "
             f"{args.steps} GAN steps (batch 16 x 1.28 s, lr warm-up 10 steps then cosine, seed 0) on every "
             f"{args.every}th training clip; validation on the 32 clips of `valid.jsonl` that the training loop "
             "evaluates (PESQ-WB / STOI on the 16 speech clips).", "",
             "| arm | levers | step | mel distance | PESQ-WB | STOI | s/step (train loop) |",
             "|---|---|---|---|---|---|---|"]
    for arm, rows in evals.items():
        levers = ", ".join(f"{k}={v}" for k, v in ARMS[arm].items()) or "all on (defaults)"
        last = train[arm][-1]
        per_step = float(last["seconds"]) / float(last["step"])
        for row in rows:
            lines.append(f"| {arm} | {levers} | {row['step']} | {row['mel_distance']} | {row.get('pesq_wb', '')} | "
                         f"{row.get('stoi', '')} | {per_step:.2f} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    Path(args.out + ".json").write_text(json.dumps({"eval": evals, "train": train, "wall_s": wall}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
