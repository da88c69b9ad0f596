"""Issue 29's 0 Hz tone (session 27): is the default's artifact tone on real speech a DC offset that the head's
0 Hz bin makes, and what is left when that bin is silenced?

For every group of ``dashtok eval recon`` (the test split, ``--per-source`` clips a group), the bundled default's
reconstruction is measured three ways: as it is; with the head's bin 0 (0-6.25 Hz of its 1280-point grid) set to
zero before the iSTFT (a forward pre-hook on the head's iSTFT, nothing else changed); and with each reconstruction's
mean subtracted (the DC offset alone removed, afterwards). Reported: the artifact tone (``metrics.artifact_tone``:
the largest peakiness excess of the average spectrum over the inputs', dB, and its frequency), the top three excess
bins, and the mel distance.

    python records/long_run/tone/dc_check.py data/corpus/test.jsonl [--per-source 20] [--json OUT] [-c MODEL]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dashtok import Tokenizer, metrics
from dashtok.audio_io import load_audio
from dashtok.codec import reconstruct
from dashtok.eval.recon import collect

VARIANTS = ("model", "head bin 0 silenced", "mean removed")


def silence_dc(module: torch.nn.Module, args: tuple) -> tuple:
    spec = args[0].clone()
    spec[:, 0] = 0
    return (spec, *args[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("--per-source", type=int, default=20)
    parser.add_argument("--json", default=None)
    parser.add_argument("-c", "--checkpoint", default=None, help="dashtok checkpoint (default: the bundled model)")
    args = parser.parse_args()
    model = Tokenizer.from_pretrained(args.checkpoint).eval()
    groups = collect([args.manifest], [], args.per_source)
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for name, items in sorted(groups.items()):
        spectra = {v: (metrics.AverageSpectrum(), metrics.AverageSpectrum()) for v in VARIANTS}
        mel: dict[str, list[float]] = defaultdict(list)
        for path, _domain in items:
            x = load_audio(path, model.sample_rate)
            with torch.no_grad():
                plain = reconstruct(model, x)
                hook = model.head.istft.register_forward_pre_hook(silence_dc)
                try:
                    silenced = reconstruct(model, x)
                finally:
                    hook.remove()
            outputs = {"model": plain, "head bin 0 silenced": silenced, "mean removed": plain - plain.mean()}
            for v, y in outputs.items():
                spectra[v][0].add(x)
                spectra[v][1].add(y)
                mel[v].append(float(metrics.mel_distance(x, y)))
        result[name] = {}
        for v in VARIANTS:
            inputs, outputs_ = spectra[v]
            excess = metrics.peakiness_db(outputs_.db()) - metrics.peakiness_db(inputs.db())
            top = np.argsort(excess)[::-1][:3]
            result[name][v] = {"tone": metrics.artifact_tone(inputs, outputs_, model.sample_rate),
                               "top3": [(round(float(excess[i]), 1), round(i * model.sample_rate / inputs.n_fft, 1))
                                        for i in top],
                               "mel": round(float(np.mean(mel[v])), 4), "clips": len(items)}
            r = result[name][v]
            print(f"{name:24s} {v:22s} tone {r['tone']['db']:5.1f} dB at {r['tone']['hz']:6.1f} Hz  top3 {r['top3']}"
                  f"  mel {r['mel']:.4f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model.model_id, "groups": result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
