"""The fixed probe subset: every valid and test clip, 2000 train clips spread evenly over the sorted manifest.

    python records/encoder/probe_subset.py data/corpus data/corpus_probe

Why not ``dashtok eval probe --max-per-split``: it takes every k-th clip with k = len // max and then the first
``max`` of those, so with the Asterisk clips sorted first (ids ``asterisk-*``) the cut drops the tail of the train
manifest, all of the music (``music-*``), and the instrument, family and pitch tasks with it.
"""

import sys
from pathlib import Path

import numpy as np


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    dst.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 2000), ("valid", None), ("test", None)):
        lines = (src / f"{split}.jsonl").read_text().splitlines()
        if n is not None and len(lines) > n:
            idx = np.unique(np.linspace(0, len(lines) - 1, n).round().astype(int))
            lines = [lines[i] for i in idx]
        (dst / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        print(split, len(lines))
    if not (dst / "audio").exists():
        (dst / "audio").symlink_to((src / "audio").resolve())


if __name__ == "__main__":
    main()
