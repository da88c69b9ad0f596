"""Measurements behind the speed decisions of `dashtok bench` (issue #7), each kept only if measured:

1. chunk batching: the ~10 s chunks of a long input run in groups (``DashengEncoder.max_chunks``) instead of one
   by one, as upstream does;
2. partial chunks cut to their length: a short clip costs in proportion to its length, not a whole chunk;
3. length-bucketed batches for directories: ``dashtok encode DIR --batch-size 16`` vs one file at a time.

    python benchmarks/speed_ablations.py [CORPUS_DIR]     # prints a markdown table; random weights for 1-2
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from dashtok import Tokenizer, TokenizerConfig
from dashtok.bench import test_signal


def best_of(fn, n: int = 3) -> float:  # noqa: ANN001
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    torch.manual_seed(0)
    rows = [f"torch {torch.__version__}, {torch.get_num_threads()} threads", "",
            "| measurement | setting | seconds | ratio |", "|---|---|---|---|"]
    model = Tokenizer(TokenizerConfig.preset("base")).eval()
    x = torch.from_numpy(test_signal(120.0, 1))
    with torch.no_grad():
        base = None
        for groups in (1, 4, 8, 16):
            model.encoder.max_chunks = groups
            t = best_of(lambda: model.encoder(x))
            base = base or t
            rows.append(f"| base encoder, 120 s input (12 chunks) | chunks per group {groups} | {t:.2f} | "
                        f"{base / t:.2f}x vs 1 |")
        model.encoder.max_chunks = 8
        full = best_of(lambda: model.encode(torch.from_numpy(test_signal(10.0, 1))))
        for seconds in (1.0, 2.5, 5.0):
            t = best_of(lambda s=seconds: model.encode(torch.from_numpy(test_signal(s, 1))))
            rows.append(f"| base encode, short clip | {seconds:.1f} s vs 10 s | {t:.3f} | "
                        f"{t / full:.2f} of the 10 s time |")
    if len(sys.argv) > 1:
        audio = sorted(f for f in (Path(sys.argv[1]) / "audio").rglob("*") if f.suffix in (".wav", ".flac"))[:400]
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "in"
            src.mkdir()
            for i, f in enumerate(audio):
                (src / f"{i:04d}{f.suffix}").symlink_to(f.resolve())
            exe = Path(sys.executable).with_name("dashtok")
            times = {}
            for bs in (1, 16):
                t0 = time.perf_counter()
                subprocess.run([str(exe), "encode", str(src), "-o", f"{tmp}/out{bs}", "-q", "--batch-size", str(bs)],
                               check=True)
                times[bs] = time.perf_counter() - t0
            secs = sum(__import__("soundfile").info(str(f)).duration for f in audio)
            for bs, t in times.items():
                rows.append(f"| dashtok encode, {len(audio)} corpus files ({secs / 60:.1f} min), default model | "
                            f"--batch-size {bs} | {t:.1f} | {times[1] / t:.2f}x vs 1 |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
