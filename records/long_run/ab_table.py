"""The equal-step table of an A/B: each arm's validation (``eval.csv`` of its run folder, or a copy) at the steps
every arm reached, raw weights / moving average, as markdown.

    python records/long_run/ab_table.py P=records/long_run/ab_phase_gan/P_eval.csv R=~/dashtok-runs/ab_phead_R/eval.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

COLUMNS = (("PESQ-WB real", "pesq_wb/real", 2), ("STOI real", "stoi/real", 3),
           ("PESQ-WB synthetic", "pesq_wb/synthetic", 2), ("group delay", "phase/gd", 3),
           ("inst. frequency", "phase/if", 3), ("mel distance", "mel_distance", 3),
           ("tone (dB)", "artifact_tone_db", 1), ("0 Hz tone (dB)", "artifact_tone_0hz_db", 1))


def rows_by_step(path: Path) -> dict[int, dict[str, str]]:
    with path.expanduser().open() as f:
        return {int(r["step"]): r for r in csv.DictReader(f)}


def cell(row: dict[str, str], key: str, digits: int) -> str:
    def one(k: str) -> str:
        value = row.get(k, "")
        return f"{float(value):.{digits}f}" if value not in ("", "nan") else "-"

    return f"{one(key)} / {one('ema/' + key)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs="+", help="LABEL=eval.csv")
    args = parser.parse_args()
    arms = {label: rows_by_step(Path(path)) for label, path in (a.split("=", 1) for a in args.arms)}
    steps = sorted(set.intersection(*(set(rows) for rows in arms.values())))
    print("| step | arm | " + " | ".join(name for name, _, _ in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for step in steps:
        for label, rows in arms.items():
            print(f"| {step} | {label} | " + " | ".join(cell(rows[step], k, d) for _, k, d in COLUMNS) + " |")


if __name__ == "__main__":
    main()
