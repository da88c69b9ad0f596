"""Curves of tokenizer runs, overlaid: training mel loss (smoothed) and validation PESQ-WB / STOI (real and synthetic
speech apart) / mel distance / artifact tone, raw weights dashed and their moving average (EMA) solid.

    python records/long_run/plot.py OUT.png RUN_DIR[=LABEL] [RUN_DIR[=LABEL] ...] [--csv OUT.csv]

RUN_DIR is a training run folder (``metrics.csv``, ``eval.csv``). With ``--csv`` the validation rows of every run
are also written to one CSV with a ``run`` column.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (("pesq_wb/real", "PESQ-WB, real speech"), ("pesq_wb/synthetic", "PESQ-WB, synthetic speech"),
          ("stoi/real", "STOI, real speech"), ("mel_distance", "mel distance, all validation clips"),
          ("artifact_tone_db", "artifact tone (dB), all validation clips"),
          ("phase/gd", "group-delay error (rad), speech"), ("phase/if", "inst.-frequency error (rad), speech"))


def rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def number(row: dict[str, str], key: str) -> float | None:
    value = row.get(key, "")
    return float(value) if value not in ("", "nan") else None


def smooth(values: list[float], k: int = 25) -> list[float]:
    return [sum(values[max(0, i - k + 1) : i + 1]) / len(values[max(0, i - k + 1) : i + 1])
            for i in range(len(values))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("png")
    parser.add_argument("runs", nargs="+", help="RUN_DIR or RUN_DIR=LABEL")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    fig, axes = plt.subplots(1, len(PANELS) + 1, figsize=(4.2 * (len(PANELS) + 1), 3.6))
    table: list[dict[str, str]] = []
    for i, spec in enumerate(args.runs):
        folder, _, label = spec.partition("=")
        label = label or Path(folder).name
        color = f"C{i}"
        train = [r for r in rows(Path(folder) / "metrics.csv") if number(r, "mel/l1") is not None]
        if train:
            axes[0].plot([int(r["step"]) for r in train], smooth([number(r, "mel/l1") or 0.0 for r in train]),
                         color=color, label=label)
        evals = rows(Path(folder) / "eval.csv")
        table += [{"run": label, **r} for r in evals]
        steps = [int(r["step"]) for r in evals]
        for ax, (key, _) in zip(axes[1:], PANELS, strict=True):
            for prefix, style in (("", "--"), ("ema/", "-")):
                points = [(s, number(r, prefix + key)) for s, r in zip(steps, evals, strict=True)]
                points = [(s, v) for s, v in points if v is not None]
                if points:
                    ax.plot(*zip(*points, strict=True), style, marker="o", ms=3, color=color,
                            label=f"{label}{' (EMA)' if prefix else ''}")
    axes[0].set_title("training mel L1 (smoothed)")
    for ax, (_, title) in zip(axes[1:], PANELS, strict=True):
        ax.set_title(title)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    if args.csv and table:
        keys = list(dict.fromkeys(k for r in table for k in r))
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(table)
    print(f"wrote {args.png}" + (f" and {args.csv}" if args.csv else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
