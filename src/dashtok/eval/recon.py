"""``dashtok eval recon``: reconstruction quality of a checkpoint, per source, with 95 % confidence intervals.

Inputs: corpus manifests (clips grouped by their ``source``; mixtures are skipped, they are enhancement inputs) or
folders of audio (grouped by folder name). Measures: multi-resolution mel distance and SI-SDR on every clip;
wide-band PESQ, STOI, DNSMOS and speaker similarity on speech (they are speech measures); per source, the artifact
tone (``metrics.artifact_tone``: a stationary tone or DC offset the codec adds to every reconstruction). Reference
codecs (Opus at 6/12/24 kbit/s, ``eval.references``) run on the same clips and are scored the same way, so every
report shows where the model stands against them. Writes ``recon.json`` and ``recon.md``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dashtok import metrics
from dashtok.audio_io import AudioError, find_audio_files, load_audio
from dashtok.codec import reconstruct
from dashtok.data.manifest import read_manifest
from dashtok.eval.references import OPUS_KBPS, opus, opus_available
from dashtok.tokenizer import Tokenizer

MEASURES = ("mel_distance", "si_sdr", "pesq_wb", "pesq_nb", "stoi", "dnsmos_ovrl", "dnsmos_ovrl_input", "speaker_sim")


def t_quantile_975(dof: int) -> float:
    """The 97.5 % quantile of Student's t with ``dof`` degrees of freedom: a table up to 4, then the Cornish-Fisher
    expansion around the normal's 1.95996 (within 3e-4 of the exact value from 5 on: 2.5706 / 2.2281 / 2.0930 at
    5 / 10 / 19)."""
    if dof < 1:
        return float("nan")
    if dof <= 4:
        return (12.7062, 4.3027, 3.1824, 2.7764)[dof - 1]
    z = 1.959964
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean, the half-width of its 95 % confidence interval (Student's t with n - 1 degrees of freedom: clips are
    few, 1.96 would understate it), and n."""
    a = np.asarray(values, dtype=np.float64)
    half = t_quantile_975(len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else float("nan")
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


REFERENCE_MEASURES = ("mel_distance", "si_sdr", "pesq_wb", "pesq_nb", "stoi")
SPEECH = ("pesq_wb", "pesq_nb", "stoi")


def score_clip(model: Tokenizer, path: Path, domain: str, plot: Path | None = None
               ) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """One clip: its scores, the input and the reconstruction (empty scores for a clip under one frame)."""
    x = load_audio(path, model.sample_rate)
    if len(x) < model.config.min_num_samples:
        return {}, x, x
    y = reconstruct(model, x)
    if plot is not None:
        from dashtok.plots import spectrograms

        spectrograms(plot, x, y, path.stem)
    row = metrics.reconstruction_scores(x, y, model.sample_rate, domain == "speech", SPEECH)
    if domain == "speech":
        mos_out, mos_in = metrics.dnsmos(y, model.sample_rate), metrics.dnsmos(x, model.sample_rate)
        if mos_out is not None and mos_in is not None:
            row["dnsmos_ovrl"], row["dnsmos_ovrl_input"] = mos_out["ovrl"], mos_in["ovrl"]
        sim = metrics.speaker_similarity(x, y, model.sample_rate)
        if sim is not None:
            row["speaker_sim"] = sim
    return row, x, y


def evaluate_recon(model: Tokenizer, manifests: list[str], folders: list[str],
                   max_per_group: int | None = None, plots: Path | None = None,
                   references: tuple[int, ...] = OPUS_KBPS) -> dict[str, Any]:
    """Scores per group; with ``plots``, a before/after spectrogram PNG of each group's first clip goes there.
    ``references``: Opus bitrates (kbit/s) to score on the same clips (skipped, and said, without ffmpeg/libopus)."""
    groups = collect(manifests, folders, max_per_group)
    refs = references if opus_available() else ()
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    ref_results: dict[str, dict[str, Any]] = {f"opus {k} kbit/s": {} for k in refs}
    skipped: list[dict[str, str]] = []
    for name, items in sorted(groups.items()):
        per: dict[str, list[float]] = defaultdict(list)
        ref_per: dict[str, dict[str, list[float]]] = {r: defaultdict(list) for r in ref_results}
        spectra = metrics.AverageSpectrum(), metrics.AverageSpectrum()  # inputs, reconstructions
        for k, (path, domain) in enumerate(items):
            plot = plots / f"spectrogram_{name}.png" if plots is not None and k == 0 else None
            try:
                row, x, y = score_clip(model, path, domain, plot)
            except AudioError as err:  # a damaged file is reported and left out; the evaluation goes on
                skipped.append({"path": str(path), "reason": str(err)})
                print(f"dashtok: warning: skipped {err}", file=sys.stderr)
                continue
            if not row:
                continue
            for key, value in row.items():
                per[key].append(value)
            spectra[0].add(x)
            spectra[1].add(y)
            for kbps in refs:
                coded = opus(x, model.sample_rate, kbps)
                for key, value in metrics.reconstruction_scores(x, coded, model.sample_rate, domain == "speech",
                                                                SPEECH).items():
                    ref_per[f"opus {kbps} kbit/s"][key].append(value)
        results[name] = {k: mean_ci(per[k]) for k in MEASURES if per[k]}
        if per:
            results[name]["artifact_tone"] = metrics.artifact_tone(*spectra, sample_rate=model.sample_rate)
            results[name]["artifact_tone_0hz_db"] = metrics.dc_tone_db(*spectra)
        for codec, scores in ref_per.items():
            ref_results[codec][name] = {k: mean_ci(scores[k]) for k in REFERENCE_MEASURES if scores[k]}
    return {"model_id": model.model_id, "precision": model.precision,
            "trained": bool(model.training_record.get("trained", False)), "groups": results,
            "references": ref_results,
            "references_note": "" if refs or not references else "ffmpeg with libopus not found: no Opus rows",
            "skipped": skipped,
            "seconds": round(time.perf_counter() - t0, 1)}


def markdown(report: dict[str, Any], level: int = 1) -> str:
    """The report as a markdown table under a heading of ``level``."""
    lines = [f"{'#' * level} Reconstruction: {report['model_id']}", "",
             "| source | n | mel distance ↓ | SI-SDR (dB) ↑ | PESQ-WB ↑ | PESQ-NB ↑ | STOI ↑ | DNSMOS ↑ | "
             "DNSMOS of input | speaker sim. ↑ | artifact tone ↓ |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["groups"].items():
        cells = [f"{r[k]['mean']:.3f} ± {r[k]['ci95']:.3f}" if k in r else "–" for k in MEASURES]
        n = r["mel_distance"]["n"] if "mel_distance" in r else 0
        tone = r.get("artifact_tone")
        dc = f" (0 Hz: {r['artifact_tone_0hz_db']:.1f} dB)" if "artifact_tone_0hz_db" in r else ""
        cells.append(f"{tone['db']:.1f} dB at {tone['hz']:.0f} Hz{dc}" if tone else "–")
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "± is the half-width of a 95 % confidence interval over the n clips (Student's t). Speech measures "
              "(PESQ-WB/NB, STOI, DNSMOS overall of the reconstruction and of the input, Resemblyzer speaker "
              "similarity) on speech only. Artifact tone: the largest excess of a bin's peakiness (dB over the median "
              "of its 32 neighbours) in the average spectrum of the reconstructions over that of the inputs "
              "(4096-point frames); in brackets that excess at 0 Hz (a DC offset)."]
    refs = report.get("references", {})
    if any(refs.values()):
        lines += ["", f"{'#' * (level + 1)} Reference codecs on the same clips", "",
                  "| source | codec | mel distance ↓ | SI-SDR (dB) ↑ | PESQ-WB ↑ | PESQ-NB ↑ | STOI ↑ |",
                  "|---|---|---|---|---|---|---|"]
        for name in report["groups"]:
            for codec, groups in refs.items():
                r = groups.get(name, {})
                cells = [f"{r[k]['mean']:.3f} ± {r[k]['ci95']:.3f}" if k in r else "–" for k in REFERENCE_MEASURES]
                lines.append(f"| {name} | {codec} | " + " | ".join(cells) + " |")
    elif report.get("references_note"):
        lines += ["", report["references_note"]]
    if report.get("skipped"):
        lines += ["", f"Skipped {len(report['skipped'])} unreadable file(s):"]
        lines += [f"- {s['reason']}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "recon.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "recon.md").write_text(report_text(report, out))


def report_text(report: dict[str, Any], out: Path, level: int = 1) -> str:
    """The markdown table with the spectrogram pictures written beside it."""
    pngs = sorted(out.glob("spectrogram_*.png"))
    return markdown(report, level) + ("\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n" if pngs else "")
