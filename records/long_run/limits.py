"""What limits a tokenizer's reconstruction of real speech: its magnitude or its phase (issue 14).

For each held-out real-speech clip, the decoder's head spectrum H (on the head's 1280/320 grid) and the input's STFT X
on the same grid are resynthesised by the model's own iSTFT in four ways:
    model        : |H|, angle(H)  (the reconstruction itself)
    oracle phase : |H|, angle(X)  (what a perfect phase would give the model's magnitude)
    oracle mag   : |X|, angle(H)  (what the model's phase gives a perfect magnitude)
    input        : |X|, angle(X)  (the grid's round trip: the ceiling)
    Griffin-Lim  : (with ``--gla-iters N``) |H| with the phase of N Griffin-Lim iterations from angle(H)
and scored with PESQ-WB, STOI and the mel distance against the input. Also the log-spectral distance of |H| to |X|
(dB, frames and bins with input energy within 60 dB of the clip's peak), and how consistent each resynthesis's
spectrum is: the share of its energy that the overlap-add keeps ("energy kept": the spectrum of the audio made from
it against it, all but two frames at each end; a signal's own spectrum keeps 1), and H's ``losses.consistency_loss``.
Then the level: the reconstruction of the same clips scaled by each of ``--gains-db`` (0 dB first), scored against
the scaled input (what training with or without ``tokenizer.gain_db`` gives quiet recordings).

    python records/long_run/limits.py MODEL.safetensors [--manifest data/corpus/test.jsonl] [--per-source 20]
        [--gains-db -30 -20 -10] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dashtok import Tokenizer, metrics
from dashtok.audio_io import load_audio
from dashtok.codec import reconstruct
from dashtok.data.manifest import read_manifest
from dashtok.data.recordings import REAL_SPEECH_SOURCES
from dashtok.train.losses import consistency_loss


def head_spectrum(model: Tokenizer, x: np.ndarray) -> torch.Tensor:
    """The complex spectrum the head hands to its iSTFT, (F, L), for one clip, as ``decode`` makes it."""
    with torch.no_grad():
        latents = model.encode(x).latents
        if latents.shape[1] > model.decode_chunk_frames:  # decode would go in windows: no single spectrum to compare
            raise ValueError(f"a {len(x) / 16000:.1f} s clip is decoded in windows; use shorter clips")
        return model.render(latents)[1][0]


def grid_stft(model: Tokenizer, x: np.ndarray, frames: int) -> torch.Tensor:
    """The first ``frames`` frames of the input's STFT on the head's own frame grid (``ISTFT.analysis``; zeros past
    the input's end)."""
    istft = model.head.istft
    t = torch.from_numpy(x).float()
    t = torch.nn.functional.pad(t, (0, max(0, frames * istft.hop_length - len(t))))
    return istft.analysis(t[None])[0, :, :frames]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--manifest", default="data/corpus/test.jsonl")
    parser.add_argument("--per-source", type=int, default=20)
    parser.add_argument("--gla-iters", type=int, default=0, help="also score a Griffin-Lim phase (0: no)")
    parser.add_argument("--gains-db", type=float, nargs="*", default=[-30.0, -20.0, -10.0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = Tokenizer.load(args.model).eval()
    hop = model.config.decoder.hop_length
    manifest = Path(args.manifest)
    rows = [r for r in read_manifest(manifest) if r.source in REAL_SPEECH_SOURCES]
    picked = [r for s in REAL_SPEECH_SOURCES for r in [r for r in rows if r.source == s][:args.per_source]]
    scores: dict[str, dict[str, list[float]]] = {}
    lsd, inconsistency = [], []
    gains = [0.0, *args.gains_db] if args.gains_db else []
    levels: dict[float, dict[str, list[float]]] = {g: {"pesq_wb": [], "stoi": []} for g in gains}
    for row in picked:
        x = load_audio(manifest.parent / row.path, 16000)
        h = head_spectrum(model, x)
        frames = h.shape[1]
        s = grid_stft(model, x, frames)
        n = min(frames * hop, len(x))
        ref = x[:n]
        gla = h
        for _ in range(args.gla_iters):  # Griffin-Lim: keep |H|, take the phase of the signal it makes
            made = model.head.istft(gla[None])[0].numpy()
            gla = torch.polar(h.abs(), grid_stft(model, made, frames).angle())
        variants = [("model", h), ("oracle phase", torch.polar(h.abs(), s.angle())),
                    ("oracle mag", torch.polar(s.abs(), h.angle())), ("input", s)]
        if args.gla_iters:
            variants.append((f"Griffin-Lim phase ({args.gla_iters} iterations from the model's)", gla))
        for name, spec in variants:
            made = model.head.istft(spec[None])
            y = made[0].numpy()[:n]
            again = model.head.istft.analysis(made)[0, :, 2:-2]  # all but the frames at the ends
            row_scores = scores.setdefault(name, {"pesq_wb": [], "stoi": [], "mel": [], "kept": []})
            for key, value in (("pesq_wb", metrics.pesq_wb(ref, y)), ("stoi", metrics.stoi(ref, y)),
                               ("mel", float(metrics.mel_distance(ref, y))),
                               ("kept", float(again.abs().square().sum() / spec[:, 2:-2].abs().square().sum()))):
                if value is not None:
                    row_scores[key].append(value)
            if name == "model":
                inconsistency.append(float(consistency_loss(spec[None], made)))
        db_h = 20 * torch.log10(h.abs() + 1e-7)
        db_s = 20 * torch.log10(s.abs() + 1e-7)
        keep = db_s > db_s.max() - 60
        lsd.append(float((db_h - db_s)[keep].abs().mean()))
        for gain in gains:
            scaled = (x * 10 ** (gain / 20)).astype(np.float32)
            with torch.no_grad():
                y = reconstruct(model, scaled)
            for key, value in (("pesq_wb", metrics.pesq_wb(scaled, y)), ("stoi", metrics.stoi(scaled, y))):
                if value is not None:
                    levels[gain][key].append(value)
    result = {"model": args.model, "clips": len(picked), "sources": list(REAL_SPEECH_SOURCES),
              "log_spectral_distance_db": round(float(np.mean(lsd)), 2),
              "head_consistency_loss": round(float(np.mean(inconsistency)), 4),
              "rows": {name: {k: round(float(np.mean(v)), 3) for k, v in d.items()} for name, d in scores.items()},
              "gains_db": {str(g): {k: round(float(np.mean(v)), 3) for k, v in d.items()} for g, d in levels.items()}}
    print(f"{len(picked)} real-speech clips of {manifest}; |H| vs |X| log-spectral distance "
          f"{result['log_spectral_distance_db']} dB; the head's consistency loss {result['head_consistency_loss']:.4f}")
    print("| resynthesis | PESQ-WB | STOI | mel distance | energy kept |\n|---|---|---|---|---|")
    for name, d in result["rows"].items():
        print(f"| {name} | {d['pesq_wb']:.2f} | {d['stoi']:.3f} | {d['mel']:.3f} | {d['kept']:.3f} |")
    if result["gains_db"]:
        print("| input gain | PESQ-WB | STOI |\n|---|---|---|")
    for gain, d in result["gains_db"].items():
        print(f"| {float(gain):+.0f} dB | {d['pesq_wb']:.2f} | {d['stoi']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
