"""PNG figures for reports: spectrograms before/after, per-task probe bars. Needs matplotlib (eval/train extras)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dashtok import metrics


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spectrograms(path: Path, original: np.ndarray, reconstruction: np.ndarray, title: str,
                 sample_rate: int = 16000) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for ax, sig, name in ((axes[0], original, "original"), (axes[1], reconstruction, "reconstruction")):
        spec = metrics.log_mel(torch.from_numpy(np.asarray(sig, dtype=np.float32))[None], metrics.MEL_RESOLUTIONS[1],
                               sample_rate)[0]
        ax.imshow(spec.numpy(), origin="lower", aspect="auto", vmin=-5, vmax=1)
        ax.set_title(f"{title}: {name}", fontsize=9)
        ax.set_ylabel("mel bin")
    axes[1].set_xlabel("frame (16 ms)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def probe_bars(path: Path, report: dict[str, Any], representations: tuple[str, ...]) -> None:
    plt = _pyplot()
    tasks = list(report["tasks"])
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(tasks)), 4))
    width = 0.8 / len(representations)
    x = np.arange(len(tasks))
    for i, rep in enumerate(representations):
        values = [report["tasks"][t][rep]["linear"] for t in tasks]
        errors = [report["tasks"][t][rep]["linear_std"] for t in tasks]
        ax.bar(x + (i - (len(representations) - 1) / 2) * width, values, width, yerr=errors, label=rep)
    ax.scatter(x, [report["tasks"][t]["chance"] for t in tasks], marker="_", s=400, color="k", label="chance", zorder=3)
    ax.set_xticks(x, tasks, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (linear probe)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


SKIPPED_COLUMNS = ("step", "seconds", "lr", "grad_norm", "total")


def _read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _number(row: dict[str, str], key: str) -> float | None:
    value = row.get(key) or ""
    try:
        number = float(value)
    except ValueError:
        return None
    return None if np.isnan(number) else number


def training_curves(path: Path, runs: list[tuple[Path, str]], smooth: int = 25) -> list[dict[str, str]]:
    """One PNG of run folders' curves, overlaid, a panel per measure: every training loss of ``metrics.csv``
    (moving mean over ``smooth`` logged steps) and every validation measure of ``eval.csv`` (raw weights dashed,
    their moving average solid where the run keeps one). Returns the validation rows of every run, labelled."""
    plt = _pyplot()
    curves: dict[str, list[tuple[str, str, list[int], list[float]]]] = {}  # panel -> (label, style, steps, values)
    table: list[dict[str, str]] = []
    for i, (folder, label) in enumerate(runs):
        train = _read_csv(folder / "metrics.csv")
        for key in dict.fromkeys(k for r in train for k in r if k not in SKIPPED_COLUMNS):
            points = [(int(r["step"]), v) for r in train if (v := _number(r, key)) is not None]
            if points:
                values = [v for _, v in points]
                mean = [float(np.mean(values[max(0, j - smooth + 1) : j + 1])) for j in range(len(values))]
                curves.setdefault(f"train: {key}", []).append((label, f"C{i}-", [s for s, _ in points], mean))
        evals = _read_csv(folder / "eval.csv")
        table += [{"run": label, **r} for r in evals]
        for key in dict.fromkeys(k.removeprefix("ema/") for r in evals for k in r if k != "step"):
            for prefix, style, tag in (("", f"C{i}--", ""), ("ema/", f"C{i}-", " (EMA)")):
                points = [(int(r["step"]), v) for r in evals if (v := _number(r, prefix + key)) is not None]
                if points:
                    curves.setdefault(f"valid: {key}", []).append(
                        (label + tag, style, [s for s, _ in points], [v for _, v in points]))
    if not curves:
        raise ValueError(f"no metrics.csv or eval.csv with numbers in {', '.join(str(f) for f, _ in runs)}")
    cols = min(4, len(curves))  # a run with one measure gets one panel, not a row of empty ones
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (title, lines) in zip(axes.flat, curves.items(), strict=False):
        for label, style, steps, values in lines:
            ax.plot(steps, values, style, lw=0.9, marker="o" if title.startswith("valid") else None, ms=2.5,
                    label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return table


def spectrogram(path: Path, audio: np.ndarray, sample_rate: int = 16000) -> None:
    """One clip's log-mel spectrogram as a small PNG (the listening page's)."""
    plt = _pyplot()
    spec = metrics.log_mel(torch.from_numpy(np.asarray(audio, dtype=np.float32))[None], metrics.MEL_RESOLUTIONS[1],
                           sample_rate)[0]
    fig, ax = plt.subplots(figsize=(3.2, 1.6))
    ax.imshow(spec.numpy(), origin="lower", aspect="auto", vmin=-5, vmax=1)
    ax.set_axis_off()
    fig.tight_layout(pad=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
