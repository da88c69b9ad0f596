"""``dashtok data ...``: the corpus commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dashtok.cli_common import CliError, positive_float, positive_int


def cmd_data_build(args: argparse.Namespace) -> int:
    from dashtok.data.build import build

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CliError(f"{out} is a file, not a corpus directory")
    if (out / "build.json").exists() and not args.force and not args.resume:
        raise CliError(f"{out} already holds a built corpus; pass --resume to finish or refresh it, or --force")
    # (an interrupted build has no build.json yet: --resume goes on in it)
    if out.is_dir() and any(out.iterdir()) and not (out / "build.json").exists() and not (args.force or args.resume):
        raise CliError(f"{out} holds other files, not a corpus of ours; name a new or empty directory, or pass "
                       f"--force to build beside them")
    summary = build(out, preset=args.preset, hours=args.hours, seed=args.seed, workers=args.workers,
                    log=not args.quiet)
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(f"wrote {out}/train.jsonl, valid.jsonl, test.jsonl ({summary['total_clips']} clips, "
          f"{summary['total_hours']:.2f} h, {summary['rejected']} rejected: see rejected.jsonl)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register this package's subcommands on ``dashtok``'s parser."""
    p = sub.add_parser("data", help="offline corpora")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("build", help="render a labelled, captioned corpus from Debian's audio packages")
    p.add_argument("output", help="corpus directory")
    p.add_argument("--preset", choices=["tiny", "small", "default"], default="default",
                   help="size preset (tiny: ~2 min of audio for tests; default: ~3 h of synthetic audio + recordings)")
    p.add_argument("--hours", type=positive_float, help="hours of synthetic audio (overrides the preset's)")
    p.add_argument("--seed", type=int, default=0, help="plan seed: the same seed gives the same manifest")
    p.add_argument("--workers", type=positive_int, default=2, help="rendering processes (default: 2)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted build in the same directory")
    p.add_argument("--force", "-f", action="store_true", help="build into a directory that holds a corpus")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_data_build)
