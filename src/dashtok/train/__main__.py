"""``python -m dashtok.train CONFIG [--set key=value ...]`` (also ``dashtok train``); works under torchrun."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from dashtok.train.config import TrainConfig


def parse_set(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dashtok train", description="run one training stage from a TOML config")
    parser.add_argument("config", help="TOML file (configs/*.toml)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. steps=100 tokenizer.gan_start=50")
    args = parser.parse_args(argv)
    try:
        cfg = TrainConfig.load(args.config, parse_set(args.set))
    except (OSError, ValueError, TypeError) as err:
        print(f"dashtok train: error: {args.config}: {err}", file=sys.stderr)
        return 2
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "config.toml").exists():
        shutil.copy(args.config, out / "config.toml")
    # config.toml is the file as given; every start (first or resumed) adds its overrides and resolved config here
    if os.environ.get("RANK", "0") == "0":
        with (out / "invocations.jsonl").open("a") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": args.config, "set": args.set,
                                "resolved": asdict(cfg)}) + "\n")
    from dashtok.train.loop import train

    print(f"trained output: {train(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
