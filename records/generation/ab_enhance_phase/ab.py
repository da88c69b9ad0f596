"""A/B (issue 26): how the enhanced latents become audio: the decoder's own phase, or the noisy input's.

For each mixture of a split (validation for the choice), the bundled enhancer's decoded output E is re-analysed on
an STFT grid and combined with the noisy input X on the same grid, two ways:
- |E| with the phase of X (the classical practice of magnitude enhancement), grids 512/128, 1024/256 and 1280/320
  (the head's);
- X times the gain |E| / |X| clamped to [floor, 1] (a mask: it cannot add energy the input lacks, and the floor
  keeps a little of the input everywhere), grid 512/128.
Also the noisy input's own resynthesis through the codec under its own phase (what the phase alone buys).

    python records/generation/ab_enhance_phase/ab.py CORPUS [--split valid] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from dashtok import metrics
from dashtok.codec import reconstruct
from dashtok.data.manifest import mixture_pairs, read_manifest
from dashtok.data.mixtures import load_pair
from dashtok.generate.enhance import LatentEnhancer
from dashtok.spectral import masked_by
from dashtok.tokenizer import Tokenizer


def with_phase(magnitude_of: np.ndarray, phase_of: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT(magnitude_of)| with the phase of STFT(phase_of), resynthesised."""
    window = torch.hann_window(n_fft)
    a, b = (torch.stft(torch.from_numpy(s), n_fft, hop, window=window, return_complex=True)
            for s in (magnitude_of, phase_of))
    return torch.istft(torch.polar(a.abs(), b.angle()), n_fft, hop, window=window, length=len(magnitude_of)).numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(args.corpus)
    manifest = root / f"{args.split}.jsonl"
    snr = {str(root / c.path): c.labels.get("snr_db") for c in read_manifest(manifest) if c.domain == "mixture"}
    tok, enh = Tokenizer.from_pretrained(), LatentEnhancer.from_pretrained()
    grids = [(512, 128), (1024, 256), (1280, 320)]
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    bands: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for noisy_path, clean_path, gain in mixture_pairs((str(manifest),)):
        noisy, clean = load_pair(noisy_path, clean_path, gain, tok.sample_rate)
        y = enh.enhance(tok, noisy, render="decoder")
        outputs = {"noisy": noisy, "enhancer, decoder phase": y}
        for n_fft, hop in grids:
            outputs[f"enhancer, noisy phase {n_fft}/{hop}"] = with_phase(y, noisy, n_fft, hop)
        tensors = torch.from_numpy(y), torch.from_numpy(noisy)
        for floor in (0.0, 0.1, 0.2, 0.3):  # the enhanced magnitude as a gain on the input, in [floor, 1]
            outputs[f"noisy x gain |E|/|X| in [{floor}, 1], 512/128"] = masked_by(*tensors, floor, 512, 128).numpy()
        outputs["resynth noisy, noisy phase 512/128"] = with_phase(reconstruct(tok, noisy), noisy, 512, 128)
        band = f"{snr.get(str(noisy_path))} dB"
        for name, out in outputs.items():
            for key, value in metrics.speech_scores(clean, out, tok.sample_rate).items():
                scores[name][key].append(value)
                bands[f"{band} | {name}"][key].append(value)
    result = {name: {k: round(float(np.mean(v)), 3) for k, v in d.items()} | {"n": len(d["stoi"])}
              for name, d in scores.items()}
    result_bands = {b: {k: round(float(np.mean(v)), 3) for k, v in d.items()} for b, d in sorted(bands.items())}
    print(json.dumps(result, indent=1))
    print(json.dumps(result_bands, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "rows": result, "by_snr": result_bands},
                                              indent=1) + "\n")


if __name__ == "__main__":
    main()
