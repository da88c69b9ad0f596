"""``python -m dashtok.train CONFIG [--set key=value ...]`` (also ``dashtok train``); works under torchrun."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from dashtok.checkpoint import CheckpointError  # cli_common imports it anyway
from dashtok.cli_common import Parser
from dashtok.train.config import TrainConfig


def parse_set(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not (key and eq):
            raise ValueError(f"--set item {item!r} needs KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="dashtok train", description="run one training stage from a TOML config")
    parser.add_argument("config", help="TOML file (configs/*.toml)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. steps=100 tokenizer.gan_start=50")
    parser.add_argument("--pack", type=Path, metavar="OUT",
                        help="tokenizer stage: write the run's latest checkpoint as a tokenizer file OUT (its moving "
                             "average; discriminators beside it) instead of training")
    parser.add_argument("--stats", action="store_true",
                        help="with --pack: the latent statistics over the run's training clips, as its final export")
    parser.add_argument("--resume-from", type=Path, metavar="FILE",
                        help="tokenizer stage: start the run folder at the step of a file written by --pack (or the "
                             "bundled default), then train on (AdamW re-warms its moments)")
    parser.add_argument("--disc", type=Path, help="discriminators for --pack / --resume-from (default: beside FILE)")
    parser.add_argument("--force", action="store_true", help="--resume-from over a run folder with checkpoints")
    args = parser.parse_args(argv)

    def refuse(problem: object) -> int:
        """A mistake in the config or its files: one line naming the config, exit code 2."""
        print(f"dashtok train: error: {args.config}: {problem}", file=sys.stderr)
        return 2

    try:
        cfg = TrainConfig.load(args.config, parse_set(args.set))
    except (OSError, ValueError, TypeError) as err:
        return refuse(err)
    misuse = ("--stats goes with --pack" if args.stats and not args.pack else
              "--pack does not go with --resume-from" if args.pack and args.resume_from else
              "--disc goes with --pack or --resume-from" if args.disc and not (args.pack or args.resume_from) else
              "--force goes with --resume-from" if args.force and not args.resume_from else
              "--pack and --resume-from run in one process, not under torchrun"
              if (args.pack or args.resume_from) and int(os.environ.get("WORLD_SIZE", "1")) > 1 else "")
    if misuse:
        parser.error(misuse)
    data = cfg.data  # what the run reads must be there before anything is written (--pack alone reads no clips)
    missing = [f"data.{key} {path}" for key in ("manifests", "valid_manifests", "folders")
               for path in getattr(data, key) if not Path(path).exists() and not (args.pack and not args.stats)]
    if missing:
        return refuse(f"{missing[0]}: no such file or directory"
                      f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}")
    if args.pack or args.resume_from:
        from dashtok.train.state import StateError, pack, restore

        try:
            if args.pack:
                print(pack(cfg, args.pack, args.stats, args.disc))
                return 0
            print(restore(cfg, args.resume_from, args.force, args.disc))
        except (StateError, CheckpointError) as err:
            print(f"dashtok train: error: {err}", file=sys.stderr)
            return 2
        except RuntimeError as err:  # load_state_dict: the file's weights do not fit the config's model
            first = str(err).strip().splitlines()[0]
            print(f"dashtok train: error: {args.pack or args.resume_from}: does not fit {args.config}'s model "
                  f"({first})", file=sys.stderr)
            return 2
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return refuse(f"out {out} cannot be made a folder ({err.strerror})")
    if not (out / "config.toml").exists():
        shutil.copy(args.config, out / "config.toml")
    # config.toml is the file as given; every start (first or resumed) adds its overrides and resolved config here
    if os.environ.get("RANK", "0") == "0":
        with (out / "invocations.jsonl").open("a") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": args.config, "set": args.set,
                                "resolved": asdict(cfg)}) + "\n")
    from dashtok.train.loop import train

    try:
        out = train(cfg)
    except CheckpointError as err:  # a starting point (tokenizer.init, flow.tokenizer, ...) that cannot be loaded
        return refuse(err)
    stopped = out.is_dir() and out.name.startswith("step-")  # max_minutes ran out: the step reached, not an export
    print(f"{'checkpoint to continue from' if stopped else 'trained output'}: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
