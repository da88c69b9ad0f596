"""Export the latest checkpoint of an MAE run: the MAE weights to commit, and the encoder file a tokenizer can use.

    python records/encoder/export_weights.py runs/mae_small_long --mae records/encoder/mae_step.safetensors \
        --encoder runs/mae_small_long/encoder_latest.safetensors

``--mae``: encoder + MAE decoder (upstream key names under ``encoder.``), with the step and the resolved config in its
metadata; ``restore_run.py`` turns it back into a resumable run folder. ``--encoder``: the Dasheng encoder alone in the
format of ``dashtok.checkpoint.save_encoder`` (``tokenizer.init`` accepts it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dashtok.checkpoint import save_encoder
from dashtok.config import EncoderConfig, FrontendConfig
from dashtok.train.config import TrainConfig
from dashtok.train.mae import MAE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="MAE run folder (has config.toml and checkpoints/latest)")
    parser.add_argument("--mae", default=None, help="write encoder + MAE decoder weights here")
    parser.add_argument("--encoder", default=None, help="write the encoder alone here (save_encoder format)")
    args = parser.parse_args()
    run = Path(args.run)
    ckpt = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    step = int(ckpt.name.removeprefix("step-"))
    last = [json.loads(line) for line in (run / "invocations.jsonl").read_text().splitlines()][-1]
    cfg = TrainConfig.from_dict(last["resolved"])
    state = load_file(str(ckpt / "mae.safetensors"))
    if args.mae:
        save_file(state, args.mae, metadata={"format": "dashtok-mae/1", "step": str(step),
                                             "config": json.dumps(last["resolved"])})
        print(f"wrote {args.mae} (step {step})")
    if args.encoder:
        model = MAE(FrontendConfig(), EncoderConfig.preset(cfg.mae.encoder_preset), cfg.mae)
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            save_encoder(model.encoder, args.encoder, training={"stage": "mae", "steps": step, "seed": cfg.seed,
                                                                "config": last["resolved"], "checkpoint": str(ckpt)})
        print(f"wrote {args.encoder} (step {step})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
