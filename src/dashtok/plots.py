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
