"""``dashtok bench``: speed and memory, against upstream, the official code and the compute floor."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dashtok.cli_common import non_negative_int, positive_float, positive_int
from dashtok.precision import PRECISIONS


def cmd_bench(args: argparse.Namespace) -> int:
    from dashtok.atomic import atomic_write
    from dashtok.bench import BenchConfig, markdown, run_bench
    from dashtok.cli_common import CliError, check_device, refuse_overwrite
    from dashtok.precision import autocast_for

    device = check_device(args.device)
    for precision in args.precision:  # before minutes of timing, not after
        try:
            autocast_for(precision, device)
        except ValueError as err:
            raise CliError(f"--precision {precision}: {err}") from None
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CliError(f"{out} is a file; -o names the folder for bench.json and bench.md")
    refuse_overwrite([out / "bench.json", out / "bench.md"], args.force)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = BenchConfig(presets=tuple(args.presets), precisions=tuple(args.precision), seconds=tuple(args.seconds),
                      batch_sizes=tuple(args.batch), repeats=args.repeats, device=args.device,
                      upstream_python=args.upstream_python, max_batched_seconds=args.max_batched_seconds,
                      official_code=args.official_code, upstream_impls=tuple(args.upstream_impls))
    report = run_bench(cfg)
    with atomic_write(out / "bench.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    with atomic_write(out / "bench.md") as tmp:
        tmp.write_text(markdown(report))
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register this package's subcommands on ``dashtok``'s parser."""
    p = sub.add_parser("bench", help="speed and memory of encode/decode per preset, vs upstream and the FLOP floor")
    p.add_argument("-o", "--output", default="out/bench", help="folder for bench.json and bench.md")
    p.add_argument("--presets", nargs="+", default=["small", "base", "release"],
                   choices=["tiny", "small", "base", "release"], help="model shapes (random weights)")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS)
    p.add_argument("--seconds", nargs="+", type=positive_float, default=[10.0, 600.0], help="input durations")
    p.add_argument("--batch", nargs="+", type=positive_int, default=[1, 4], help="batch sizes")
    p.add_argument("--max-batched-seconds", type=positive_float, default=60.0,
                   help="run batch sizes > 1 only on inputs up to this long (default: 60)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed runs per case up to 60 s (median; longer: 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--upstream-python", help="a Python interpreter with the upstream dasheng package and "
                                             "torchaudio: times upstream's encoder on the same weights and input")
    p.add_argument("--official-code", help="a copy of audiohacking/audiogen.cpp (its reference/ folder is the "
                                           "official DashengTokenizer remote code): with --upstream-python (which "
                                           "then also needs transformers and einops), times the official encode and "
                                           "decode on the same weights and input, and their peak memory")
    p.add_argument("--upstream-impls", nargs="*", default=["upstream", "dashtok"], choices=["upstream", "dashtok"],
                   help="encoder comparisons under --upstream-python: upstream dasheng, and/or our encoder code on "
                        "that interpreter (default: both; none: only the official comparison)")
    p.add_argument("--force", "-f", action="store_true", help="overwrite bench.json and bench.md in the folder")
    p.set_defaults(func=cmd_bench)
