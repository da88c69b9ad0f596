"""Models side by side on the test split: each group's PESQ-WB, STOI, mel distance and artifact tone from the
``recon.json`` of ``dashtok eval recon`` runs on the same clips, as markdown.

    python records/long_run/recon_table.py default=evals/default_test/recon.json F=evals/F_test/recon.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

MEASURES = (("PESQ-WB", "pesq_wb", 2), ("STOI", "stoi", 3), ("mel distance", "mel_distance", 3))


def value(group: dict[str, Any], key: str) -> float | None:
    entry = group.get(key)
    return None if not isinstance(entry, dict) or "mean" not in entry else float(entry["mean"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="LABEL=recon.json")
    args = parser.parse_args()
    runs = {label: json.loads(Path(path).expanduser().read_text())["groups"]
            for label, path in (m.split("=", 1) for m in args.models)}
    labels = list(runs)
    groups = [g for g in runs[labels[0]] if all(g in r for r in runs.values())]
    print("| group | measure | " + " | ".join(labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for g in groups:
        for name, key, digits in MEASURES:
            cells = [value(runs[label][g], key) for label in labels]
            if all(c is None for c in cells):
                continue
            print(f"| {g} | {name} | " + " | ".join("-" if c is None else f"{c:.{digits}f}" for c in cells) + " |")
        tones = [runs[label][g].get("artifact_tone") for label in labels]
        print(f"| {g} | tone | " + " | ".join("-" if not t else f"{t['db']:.1f} dB at {t['hz']:.0f} Hz"
                                              for t in tones) + " |")
        dc = [runs[label][g].get("artifact_tone_0hz_db") for label in labels]
        if any(d is not None for d in dc):
            print(f"| {g} | 0 Hz tone | " + " | ".join("-" if d is None else f"{d:.1f} dB" for d in dc) + " |")


if __name__ == "__main__":
    main()
