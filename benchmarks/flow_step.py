"""Cost of one training step of the flow stage (text-to-audio flow matching), float32 against bf16 autocast
(``flow.autocast``), at the shapes of ``configs/flow_small.toml``: batch 16, 6 s crops (150 frames) of 192-d latents,
the velocity network of the bundled generator's size, caption embeddings of 16 captions.

    python benchmarks/flow_step.py [--threads 1] [--steps 8] [--rounds 3] [-o benchmarks/cpu_2core/flow_step]

Rounds alternate the two precisions (each round after ``--warmup`` untimed steps of each), so a busy phase of a
shared machine falls on both; the table gives the median over all timed steps. The caption encoder's cost is timed
apart (it runs once per step in either precision).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from dashtok.generate.flow import flow_loss
from dashtok.generate.model import TextToAudio
from dashtok.generate.text import TextEncoder
from dashtok.generate.tied import Tie
from dashtok.generate.velocity_net import VelocityNetConfig
from dashtok.precision import autocast_for, native_bf16
from dashtok.train.config import FlowStageConfig

CAPTIONS = ["a cello plays a slow melody in D minor", "a woman speaks German quickly in a high-pitched voice",
            "a drum kit plays a breakbeat beat at 95 bpm", "a dog barks twice"] * 4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=8, help="timed steps per precision and round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("-o", "--output", default="benchmarks/cpu_2core/flow_step")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    f = FlowStageConfig()
    text = TextEncoder()
    t0 = time.perf_counter()
    for _ in range(5):
        tokens, token_mask = text(CAPTIONS)
    text_seconds = (time.perf_counter() - t0) / 5
    net = TextToAudio(VelocityNetConfig(latent_dim=192, text_dim=TextEncoder.dim, dim=f.dim, depth=f.depth,
                                        heads=f.heads), Tie("benchmark")).net
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(16, int(f.max_seconds * 25), 192, generator=gen)
    frame_mask = torch.ones(z.shape[:2], dtype=torch.bool)
    drop = torch.zeros(16, dtype=torch.bool)

    def step(precision: str) -> float:
        start = time.perf_counter()
        with autocast_for(precision, torch.device("cpu")):
            loss = flow_loss(lambda x, t: net(x, t, tokens, token_mask, frame_mask, drop), z, gen, frame_mask)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for r in range(args.rounds):
        for precision in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            for _ in range(args.warmup):
                step(precision)
            times[precision] += [step(precision) for _ in range(args.steps)]
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {"threads": args.threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "bf16_in_hardware": native_bf16(torch.device("cpu")), "processor": platform.processor(),
              "torch": torch.__version__, "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
              "median_step_seconds": {k: round(v, 3) for k, v in median.items()},
              "speedup": round(median["fp32"] / median["bf16"], 2), "caption_encoder_seconds": round(text_seconds, 3),
              "timed_steps": {k: len(v) for k, v in times.items()}}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        f"# Flow stage step, {args.threads} thread(s), {result['cpu_capability']} (bf16 in hardware: "
        f"{result['bf16_in_hardware']})\n\n| precision | median step (s) |\n|---|---|\n"
        + "".join(f"| {k} | {v:.3f} |\n" for k, v in result["median_step_seconds"].items())
        + f"\nbf16 autocast is {result['speedup']}x faster; the caption encoder adds {text_seconds:.3f} s a step in "
          f"either. `python benchmarks/flow_step.py --threads {args.threads}`\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
