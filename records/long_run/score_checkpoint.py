"""Score a tokenizer run's checkpoint (its raw weights and, if kept, their moving average) on the run's validation
clips with the training validation itself (``dashtok.train.run.evaluate``: PESQ-WB / STOI on real and synthetic
speech, mel distance, artifact tone), for checkpoints written before a measure was added to it.

    python records/long_run/score_checkpoint.py CONFIG RUN_DIR/checkpoints/step-N [--set key=value ...]

(``dashtok train CONFIG --pack OUT`` writes a run's latest checkpoint as a tokenizer file.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

from dashtok.train.__main__ import parse_set
from dashtok.train.config import TrainConfig
from dashtok.train.data import AudioBank
from dashtok.train.run import evaluate
from dashtok.train.tokenizer_stage import build_tokenizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="the run's overrides")
    args = parser.parse_args()
    cfg = TrainConfig.load(args.config, parse_set(args.set))
    valid = AudioBank.from_config(cfg.data, valid=True)
    scores: dict[str, float] = {}
    for name in ("model", "ema"):
        path = args.checkpoint / f"{name}.safetensors"
        if not path.is_file():
            continue
        model = build_tokenizer(cfg)
        model.load_state_dict(load_file(str(path)), strict=True)
        prefix = "" if name == "model" else "ema/"
        scores.update({prefix + k: v for k, v in evaluate(model, valid).items()})
    print(json.dumps({"checkpoint": str(args.checkpoint), **scores}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
