"""``dashtok eval se``: speech enhancement on the corpus mixtures (test split; ``valid`` for choosing between recipes),
before and after, against a Wiener baseline.

Groups: mixtures of held-out *real* human speech, and of synthetic test speech. Systems: the noisy input, the
classical Wiener-style baseline, and the latent enhancer decoded by its tokenizer, rendered as ``dashtok enhance``
renders it (the decoded magnitude as a gain on the noisy input) and as the decoding itself ("dashtok, decoder"). Two
references separate the enhancer from its codec: the noisy input encoded and decoded unchanged (``resynth noisy``:
where the decoder rendering starts) and the clean target encoded and decoded (``resynth clean``: the best a perfect
latent enhancer could reach through the decoder; the mask rendering keeps the input's phase and is not bounded by
it). Measures: PESQ-WB, STOI, SI-SDR and DNSMOS overall, each against the clean target (DNSMOS needs no reference).
Each group is also reported per SNR band of the mixtures (PESQ-WB and STOI of every system).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dashtok import metrics
from dashtok.codec import reconstruct
from dashtok.data.manifest import mixture_pairs, read_manifest
from dashtok.data.mixtures import load_pair
from dashtok.eval.recon import mean_ci
from dashtok.generate.enhance import LatentEnhancer, render_enhanced, wiener_baseline
from dashtok.tokenizer import Tokenizer

SYSTEMS = ("noisy", "wiener", "dashtok", "dashtok, decoder", "resynth noisy", "resynth clean")
MEASURES = ("pesq_wb", "stoi", "si_sdr", "dnsmos_ovrl")


def _scores(clean: np.ndarray, y: np.ndarray, sr: int) -> dict[str, float]:
    row = {"si_sdr": float(metrics.si_sdr(clean, y)[0])}
    row.update(metrics.speech_scores(clean, y, sr))
    mos = metrics.dnsmos(y, sr)
    if mos is not None:
        row["dnsmos_ovrl"] = mos["ovrl"]
    return row


def _snr_order(band: str) -> float:
    """"-5 dB" before "0 dB" ...; a mixture without an SNR label ("None dB") last."""
    try:
        return float(band.split()[0])
    except ValueError:
        return float("inf")


def evaluate_se(tokenizer: Tokenizer, enhancer: LatentEnhancer, corpus: str | Path,
                max_per_group: int | None = None, split: str = "test") -> dict[str, Any]:
    root = Path(corpus)
    t0 = time.perf_counter()
    manifest = root / f"{split}.jsonl"
    pairs = mixture_pairs((str(manifest),))
    snr = {str(root / c.path): c.labels.get("snr_db") for c in read_manifest(manifest) if c.domain == "mixture"}
    groups: dict[str, list[tuple[Path, Path, float]]] = defaultdict(list)
    for pair in pairs:
        groups["real speech + noise" if "real-speech" in str(pair[1]) else "synthetic speech + noise"].append(pair)
    results: dict[str, Any] = {}
    by_snr: dict[str, Any] = {}
    for name, items in sorted(groups.items()):
        if max_per_group is not None:
            items = items[:max_per_group]
        per: dict[str, dict[str, list[float]]] = {s: defaultdict(list) for s in SYSTEMS}
        bands: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: {s: defaultdict(list)
                                                                                   for s in SYSTEMS})
        for noisy_path, clean_path, gain in items:
            band = f"{snr.get(str(noisy_path))} dB"
            noisy, clean = load_pair(noisy_path, clean_path, gain, tokenizer.sample_rate)
            decoded = enhancer.decode_enhanced(tokenizer, noisy)
            outputs = {"noisy": noisy, "wiener": wiener_baseline(noisy),
                       "dashtok": render_enhanced(decoded, noisy, "mask"), "dashtok, decoder": decoded,
                       "resynth noisy": reconstruct(tokenizer, noisy),
                       "resynth clean": reconstruct(tokenizer, clean)}
            for system, y in outputs.items():
                for key, value in _scores(clean, y, tokenizer.sample_rate).items():
                    per[system][key].append(value)
                    bands[band][system][key].append(value)
        results[name] = {s: {k: mean_ci(v) for k, v in per[s].items()} for s in SYSTEMS}
        by_snr[name] = {b: {s: {k: mean_ci(v) for k, v in bands[b][s].items() if k in ("pesq_wb", "stoi")}
                            for s in SYSTEMS}
                        for b in sorted(bands, key=_snr_order)}
    return {"tokenizer": tokenizer.model_id, "enhancer_trained": bool(enhancer.training_record.get("trained")),
            "split": split, "groups": results, "by_snr": by_snr, "seconds": round(time.perf_counter() - t0, 1)}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Speech enhancement on {report['tokenizer']} latents ({report.get('split', 'test')} mixtures)", "",
             "| mixtures | system | n | PESQ-WB ↑ | STOI ↑ | SI-SDR (dB) ↑ | DNSMOS ↑ |",
             "|---|---|---|---|---|---|---|"]
    for name, systems in report["groups"].items():
        for system, r in systems.items():
            cells = [f"{r[k]['mean']:.3f} ± {r[k]['ci95']:.3f}" if k in r else "–" for k in MEASURES]
            n = r["si_sdr"]["n"] if "si_sdr" in r else 0
            lines.append(f"| {name} | {system} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "Per SNR band of the mixtures, PESQ-WB / STOI (n):", "",
              "| mixtures | SNR | " + " | ".join(SYSTEMS) + " |", "|---|---|" + "---|" * len(SYSTEMS)]
    for name, bands in report.get("by_snr", {}).items():
        for band, systems in bands.items():
            cells = [f"{r['pesq_wb']['mean']:.2f} / {r['stoi']['mean']:.3f} ({r['stoi']['n']})"
                     if "pesq_wb" in r and "stoi" in r else "–" for r in systems.values()]
            lines.append(f"| {name} | {band} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "se.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "se.md").write_text(markdown(report))
