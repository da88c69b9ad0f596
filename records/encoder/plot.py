"""Curves of the encoder record: MAE loss (new run vs the bundled default's stage 1) and the probe history.

    python records/encoder/plot.py       (reads records/encoder/mae_metrics.csv, probe_history.csv; writes PNGs)
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
OLD = HERE.parent / "default_tokenizer" / "mae_metrics.csv"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def smooth(values: list[float], k: int = 10) -> list[float]:
    return [sum(values[max(0, i - k + 1) : i + 1]) / len(values[max(0, i - k + 1) : i + 1])
            for i in range(len(values))]


def main() -> None:
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for path, label in ((OLD, "bundled default (mae_small, 2500 steps, decoder depth 2)"),
                        (HERE / "mae_metrics.csv", "mae_small_long (decoder depth 4)")):
        r = rows(path)
        steps = [int(x["step"]) for x in r]
        loss = [float(x["mae/loss"]) for x in r]
        ax[0].plot(steps, smooth(loss), label=label)
    ax[0].set(xlabel="step (batch 16 x 10.08 s)", ylabel="masked-patch loss (10-point mean)", title="MAE loss")
    ax[0].legend(fontsize=8)
    hist = HERE / "probe_history.csv"
    if hist.is_file():
        r = rows(hist)
        tasks = sorted({x["task"] for x in r})
        for task in tasks:
            pts = sorted((int(x["step"]), float(x["new_semantic"]) - float(x["old_semantic"]))
                         for x in r if x["task"] == task)
            ax[1].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=task)
        ax[1].axhline(0, color="k", lw=0.8)
        ax[1].set(xlabel="MAE step", ylabel="new - old semantic linear accuracy", title="probe, test split")
        ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "curves.png", dpi=110)
    print(f"wrote {HERE / 'curves.png'}")


if __name__ == "__main__":
    main()
