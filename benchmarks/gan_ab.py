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
    parser.add_argument("--seed", type=int, default=0, help="run seed (batches, discriminator init)")
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
        name = arm if args.seed == 0 else f"{arm}-seed{args.seed}"
        sets = {"out": f"{args.runs}/{name}", "seed": args.seed, "steps": args.steps, "warmup": 10, "log_every": 10,
                "save_every": args.steps, "eval_every": args.eval_every, "threads": args.threads,
                "data.manifests": [str(manifest)], "tokenizer.init": args.init, "tokenizer.warm_start": True,
                "tokenizer.gan_start": 0, **{f"tokenizer.{k}": v for k, v in ARMS[arm].items()}}
        cmd = [sys.executable, "-m", "dashtok.train", "configs/tokenizer_small.toml", "--set",
               *[f"{k}={json.dumps(v)}" for k, v in sets.items()]]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall[name] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {wall[name]} s", flush=True)
    report(args, wall)


def start_scores(args: argparse.Namespace) -> dict[str, Any]:
    """The validation scores of the starting checkpoint (step 0 of every arm), computed once."""
    path = Path(args.runs) / "step0.json"
    if not path.is_file():
        import torch

        from dashtok import Tokenizer
        from dashtok.train.config import TrainConfig
        from dashtok.train.data import AudioBank
        from dashtok.train.run import evaluate

        torch.set_num_threads(args.threads)
        cfg = TrainConfig.load(ROOT / "configs" / "tokenizer_small.toml")
        path.write_text(json.dumps(evaluate(Tokenizer.load(args.init), AudioBank.from_config(cfg.data, valid=True))))
    return {"step": 0, **json.loads(path.read_text())}


def report(args: argparse.Namespace, wall: dict[str, float]) -> None:
    found = sorted(Path(args.runs).glob("*/eval.csv"), key=lambda p: (p.parent.name.partition("-seed")[2],
                                                                       list(ARMS).index(p.parent.name.partition("-seed")[0])))
    runs = {path.parent.name: path.parent for path in found}
    step0 = start_scores(args)
    evals = {arm: read_csv(path / "eval.csv") for arm, path in runs.items()}
    train = {arm: read_csv(path / "metrics.csv") for arm, path in runs.items()}
    steps = sorted({0} | {int(row["step"]) for rows in evals.values() for row in rows})
    lines = ["# GAN-step levers: quality at equal steps (issue 13)", "",
             f"`python benchmarks/gan_ab.py --steps {args.steps} --eval-every {args.eval_every} --threads "
             f"{args.threads} [--seed N]`: each arm warm-starts from `{args.init}` with fresh discriminators and "
             f"trains GAN steps (batch 16 x 1.28 s, lr 5e-4 with a 10-step warm-up then cosine to 10 %, seed 0 unless "
             f"the arm says `-seedN`) on every {args.every}th training clip; validation on the 32 clips of "
             "`valid.jsonl` that the training loop evaluates (PESQ-WB / STOI on the 16 speech clips among them). "
             "Step 0 is the starting checkpoint, the same for every arm.", "",
             "Arms: " + "; ".join(f"**{a}**: " + (", ".join(f"{k}={v}" for k, v in ARMS[a].items()) or "all levers on")
                                  for a in ARMS), ""]
    for metric, label in (("mel_distance", "mel distance (lower is better)"), ("pesq_wb", "PESQ-WB"),
                          ("stoi", "STOI")):
        lines += [f"### {label}", "", "| arm | " + " | ".join(f"step {s}" for s in steps) + " | s/step |",
                  "|---|" + "---|" * (len(steps) + 1)]
        for arm, rows in evals.items():
            by_step = {int(row["step"]): row.get(metric, "") for row in rows}
            by_step[0] = str(step0.get(metric, ""))
            last = train[arm][-1]
            per_step = float(last["seconds"]) / float(last["step"])
            lines.append(f"| {arm} | " + " | ".join(by_step.get(s, "") for s in steps) + f" | {per_step:.2f} |")
        lines.append("")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    Path(args.out + ".json").write_text(json.dumps({"step0": step0, "eval": evals, "train": train, "wall_s": wall},
                                                   indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
