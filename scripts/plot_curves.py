"""Plot the training curves of a run folder (metrics.csv, eval.csv) to one PNG.

    .venv/bin/python scripts/plot_curves.py runs/tokenizer_small -o curves.png
"""

import argparse
import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path: Path) -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                try:
                    cols.setdefault(k, []).append(float(v) if v not in ("", None) else math.nan)
                except ValueError:
                    cols.setdefault(k, []).append(math.nan)
    return cols


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders")
    parser.add_argument("-o", "--output", required=True, help="PNG file")
    args = parser.parse_args()
    panels: list[tuple[str, str, dict[str, list[float]]]] = []
    for run in map(Path, args.runs):
        for name in ("metrics.csv", "eval.csv"):
            if (run / name).is_file():
                cols = read(run / name)
                for key in cols:
                    if key not in ("step", "seconds", "lr", "grad_norm", "total") and any(
                            not math.isnan(v) for v in cols[key]):
                        panels.append((run.name, key, cols))
    fig, axes = plt.subplots(math.ceil(len(panels) / 3), 3, figsize=(13, 3 * math.ceil(len(panels) / 3)),
                             squeeze=False)
    for ax, (name, key, cols) in zip(axes.flat, panels, strict=False):
        ax.plot(cols["step"], cols[key], lw=0.8)
        ax.set_title(f"{name}: {key}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
