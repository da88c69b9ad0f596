"""Is the phase the decoder gives learnable from what it already computes? A probe of the head's phase rows (issue 14).

``limits.py`` says the model's phase costs about one point of PESQ-WB. The head's phase is a linear map of the
decoder's last hidden states. This probe keeps the decoder and the magnitude rows fixed and refits only the phase
rows (weights and bias, from their trained values) on training clips with the phase losses of APNet (Ai & Ling,
2023): anti-wrapped instantaneous phase, group delay (phase differences across bins) and instantaneous frequency
(across frames), each weighted by the input's magnitude; then it resynthesises held-out clips with the model's
magnitude and the refitted phase. If the refit lifts PESQ-WB, the decoder's features carry a better phase than the
head makes of them, and training with such losses is the lever; if not, the decoder itself must learn it.

    python records/long_run/phase_probe.py MODEL.safetensors [--fit-clips 60] [--steps 400] [--json OUT.json]

The fit uses the corpus's train split (speech), the scoring its valid split's real speech: no test clip is seen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from limits import grid_stft  # noqa: E402

from dashtok import Tokenizer, metrics  # noqa: E402
from dashtok.audio_io import load_audio  # noqa: E402
from dashtok.data.manifest import read_manifest  # noqa: E402
from dashtok.data.recordings import REAL_SPEECH_SOURCES  # noqa: E402
from dashtok.train.losses import phase_distances  # noqa: E402

MAX_SECONDS = 8.0  # one decoding window


def hidden_and_target(model: Tokenizer, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The head's input h (L, dim), its log-magnitude rows' output (F, L) and the input's STFT X (F, L) on the
    head's grid, for one clip."""
    seen: list[torch.Tensor] = []
    hook = model.head.out.register_forward_hook(lambda mod, args, out: seen.append(args[0][0].float()))
    try:
        with torch.no_grad():
            model.decode(model.encode(x).latents)
    finally:
        hook.remove()
    h = seen[0]
    with torch.no_grad():
        log_mag = model.head.out(h).T[: model.head.out.out_features // 2]
    return h, log_mag, grid_stft(model, x, h.shape[0])


def clips(manifest: str, n: int, real_only: bool) -> list[np.ndarray]:
    root = Path(manifest).parent
    rows = [c for c in read_manifest(manifest) if c.domain == "speech"
            and (c.source in REAL_SPEECH_SOURCES or not real_only)]
    rows = rows[:: max(1, len(rows) // n)][:n]
    return [load_audio(root / c.path, 16000)[: int(MAX_SECONDS * 16000)] for c in rows]


def resynth(model: Tokenizer, log_mag: torch.Tensor, phase: torch.Tensor) -> np.ndarray:
    mag = torch.exp(log_mag).clamp(max=model.head.max_magnitude)
    with torch.no_grad():
        return model.head.istft(torch.polar(mag, phase)[None])[0].numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--fit-clips", type=int, default=60)
    parser.add_argument("--eval-clips", type=int, default=20)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--losses", default="ip,gd,if", help="which of ip, gd, if the fit sums")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = Tokenizer.load(args.model)
    rows = model.head.out.out_features // 2
    t0 = time.perf_counter()
    fit = [hidden_and_target(model, x) for x in clips("data/corpus/train.jsonl", args.fit_clips, real_only=False)]
    held = clips("data/corpus/valid.jsonl", args.eval_clips, real_only=True)
    held_data = [hidden_and_target(model, x) for x in held]
    print(f"features of {len(fit)} + {len(held)} clips in {time.perf_counter() - t0:.0f} s", flush=True)
    h = torch.cat([f[0] for f in fit])  # (N, dim)
    true = torch.cat([f[2] for f in fit], dim=1)  # (F, N)
    true_phase, mag = true.angle()[None], true.abs()[None]
    w = model.head.out.weight.detach()[rows:].clone().requires_grad_(True)
    b = model.head.out.bias.detach()[rows:].clone().requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=args.lr)
    keys = args.losses.split(",")
    # Each clip's frames are consecutive in h: differences across clip boundaries are masked out of the IF term.
    bounds = torch.ones(true.shape[1] - 1, dtype=torch.bool)
    ends = np.cumsum([f[0].shape[0] for f in fit])[:-1]
    bounds[torch.as_tensor(ends - 1)] = False
    history = []
    for step in range(args.steps + 1):
        pred = (h @ w.T + b).T
        parts = {k.removeprefix("phase/"): v
                 for k, v in phase_distances(pred[None], true_phase, mag, bounds.float()[None]).items()}
        loss = sum(parts[k] for k in keys)
        if step % 50 == 0:
            row = {"step": step, **{k: round(float(v.detach()), 4) for k, v in parts.items()}}
            history.append(row)
            print(json.dumps(row), flush=True)
        if step == args.steps:
            break
        opt.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        opt.step()
    scores: dict[str, list[dict[str, float]]] = {"model": [], "refit phase": [], "oracle phase": []}
    for x, (hh, log_mag, spec) in zip(held, held_data, strict=True):
        with torch.no_grad():
            own = model.head.out(hh).T[rows:]
            refit = (hh @ w.T + b).T
        n = hh.shape[0] * model.head.istft.hop_length
        ref = x[:n]
        for name, phase in (("model", own), ("refit phase", refit), ("oracle phase", spec.angle())):
            y = resynth(model, log_mag, phase)[: len(ref)]
            scores[name].append(metrics.reconstruction_scores(ref[: len(y)], y, 16000, True))
    table = {name: {k: round(float(np.mean([r[k] for r in rs])), 4) for k in ("pesq_wb", "stoi", "mel_distance")}
             for name, rs in scores.items()}
    for name, row in table.items():
        print(f"| {name} | {row['pesq_wb']:.2f} | {row['stoi']:.3f} | {row['mel_distance']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "fit_clips": len(fit), "eval_clips": len(held),
                                         "losses": keys, "steps": args.steps, "lr": args.lr, "history": history,
                                         "scores": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
