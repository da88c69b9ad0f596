"""``dashtok eval recon``: reconstruction quality of a checkpoint, per source, with 95 % confidence intervals.

Inputs: corpus manifests (clips grouped by their ``source``; mixtures are skipped, they are enhancement inputs) or
folders of audio (grouped by folder name). Measures: multi-resolution mel distance and SI-SDR on every clip;
wide-band PESQ, STOI, DNSMOS and speaker similarity on speech (they are speech measures). Writes ``recon.json`` and
``recon.md``.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dashtok import metrics
from dashtok.audio_io import find_audio_files, load_audio
from dashtok.codec import reconstruct
from dashtok.data.manifest import read_manifest
from dashtok.tokenizer import Tokenizer

MEASURES = ("mel_distance", "si_sdr", "pesq_wb", "pesq_nb", "stoi", "dnsmos_ovrl", "dnsmos_ovrl_input", "speaker_sim")


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean and the half-width of a normal-approximation 95 % confidence interval."""
    a = np.asarray(values, dtype=np.float64)
    half = 1.96 * a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else float("nan")
    return {"mean": round(float(a.mean()), 4), "ci95": round(float(half), 4), "n": len(a)}


def collect(manifests: list[str], folders: list[str], max_per_group: int | None) -> dict[str, list[tuple[Path, str]]]:
    """group name -> [(audio path, domain)]."""
    groups: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    for m in manifests:
        root = Path(m).parent
        for clip in read_manifest(m):
            if clip.source != "mixture":
                groups[clip.source].append((root / clip.path, clip.domain))
    for folder in folders:
        for f in find_audio_files(folder):
            groups[Path(folder).name].append((f, "speech"))
    if max_per_group is not None:
        groups = defaultdict(list, {k: v[:: max(1, len(v) // max_per_group)][:max_per_group]
                                    for k, v in groups.items()})
    return groups


def score_clip(model: Tokenizer, path: Path, domain: str, plot: Path | None = None) -> dict[str, float]:
    x = load_audio(path, model.sample_rate)
    if len(x) < model.config.min_num_samples:
        return {}
    y = reconstruct(model, x)
    if plot is not None:
        from dashtok.eval.plots import spectrograms

        spectrograms(plot, x, y, path.stem)
    row = {"mel_distance": float(metrics.mel_distance(x, y)[0]), "si_sdr": float(metrics.si_sdr(x, y)[0])}
    if domain == "speech":
        row.update(metrics.speech_scores(x, y, model.sample_rate, ("pesq_wb", "pesq_nb", "stoi")))
        mos_out, mos_in = metrics.dnsmos(y, model.sample_rate), metrics.dnsmos(x, model.sample_rate)
        if mos_out is not None and mos_in is not None:
            row["dnsmos_ovrl"], row["dnsmos_ovrl_input"] = mos_out["ovrl"], mos_in["ovrl"]
        sim = metrics.speaker_similarity(x, y, model.sample_rate)
        if sim is not None:
            row["speaker_sim"] = sim
    return row


def evaluate_recon(model: Tokenizer, manifests: list[str], folders: list[str],
                   max_per_group: int | None = None, plots: Path | None = None) -> dict[str, Any]:
    """Scores per group; with ``plots``, a before/after spectrogram PNG of each group's first clip goes there."""
    groups = collect(manifests, folders, max_per_group)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    for name, items in sorted(groups.items()):
        per: dict[str, list[float]] = defaultdict(list)
        for k, (path, domain) in enumerate(items):
            plot = plots / f"spectrogram_{name}.png" if plots is not None and k == 0 else None
            for key, value in score_clip(model, path, domain, plot).items():
                per[key].append(value)
        results[name] = {k: mean_ci(per[k]) for k in MEASURES if per[k]}
    return {"model_id": model.model_id, "precision": model.precision,
            "trained": bool(model.training_record.get("trained", False)), "groups": results,
            "seconds": round(time.perf_counter() - t0, 1)}


def markdown(report: dict[str, Any], level: int = 1) -> str:
    """The report as a markdown table under a heading of ``level``."""
    lines = [f"{'#' * level} Reconstruction: {report['model_id']}", "",
             "| source | n | mel distance ↓ | SI-SDR (dB) ↑ | PESQ-WB ↑ | PESQ-NB ↑ | STOI ↑ | DNSMOS ↑ | "
             "DNSMOS of input | speaker sim. ↑ |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["groups"].items():
        cells = [f"{r[k]['mean']:.3f} ± {r[k]['ci95']:.3f}" if k in r else "–" for k in MEASURES]
        n = r["mel_distance"]["n"] if "mel_distance" in r else 0
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "± is the half-width of a 95 % confidence interval over clips. Speech measures (PESQ-WB/NB, STOI, "
              "DNSMOS overall of the reconstruction and of the input, Resemblyzer speaker similarity) on speech only."]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "recon.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "recon.md").write_text(report_text(report, out))


def report_text(report: dict[str, Any], out: Path, level: int = 1) -> str:
    """The markdown table with the spectrogram pictures written beside it."""
    pngs = sorted(out.glob("spectrogram_*.png"))
    return markdown(report, level) + ("\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n" if pngs else "")
