"""Peak memory of ``dashtok encode`` against the duration of the input (issue: bounded-memory encoding).

For each duration it writes a 16 kHz mono FLAC (the bundled speech clip tiled, plus noise), runs ``dashtok encode``
on it in a fresh process with the bundled default model, and reports that process's peak resident set size
(``ru_maxrss``), its wall time, and (with ``--reference``) the same for another dashtok source tree, e.g. the
commit before streaming encode. Results: a markdown table and JSON.

    .venv/bin/python benchmarks/encode_memory.py --minutes 1 30 180 -o benchmarks/cpu_2core/encode_memory
    .venv/bin/python benchmarks/encode_memory.py --minutes 1 30 --reference /tmp/dashtok-old/src ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from dashtok.audio_io import load_audio
from dashtok.checkpoint import bundled_path

PROBE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
         "r = subprocess.run(sys.argv[1:]); "
         "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t)")


def make_input(path: Path, minutes: float) -> None:
    clip = load_audio(bundled_path("demo_speech.flac"), 16000)
    n = int(minutes * 60 * 16000)
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=16000, channels=1, subtype="PCM_16", format="FLAC") as f:
        for start in range(0, n, len(clip)):
            piece = clip[: min(len(clip), n - start)]
            f.write(piece + 0.003 * rng.standard_normal(len(piece)).astype(np.float32))


def peak_of(src: str | None, audio: Path, out: Path) -> dict[str, float]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, "-c", PROBE, sys.executable, "-m", "dashtok.cli", "encode", str(audio), "-o", str(out),
           "--force", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    code, kb, seconds = proc.stdout.split()[-3:]
    if int(code) != 0:
        raise RuntimeError(f"dashtok encode failed: {proc.stderr[-2000:]}")
    return {"peak_mb": int(kb) / 1024, "seconds": float(seconds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", nargs="+", type=float, default=[1.0, 30.0, 180.0])
    p.add_argument("--reference", help="another dashtok src folder to measure the same way (e.g. an older commit)")
    p.add_argument("--reference-max-minutes", type=float, default=30.0, help="skip the reference beyond this")
    p.add_argument("-o", "--output", default="out/encode_memory")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            audio = Path(tmp) / f"{minutes:g}min.flac"
            t0 = time.perf_counter()
            make_input(audio, minutes)
            row = {"minutes": minutes, "input_mb": audio.stat().st_size / 2**20,
                   "make_input_s": time.perf_counter() - t0,
                   "streamed": peak_of(None, audio, Path(tmp) / "z.safetensors")}
            if args.reference and minutes <= args.reference_max_minutes:
                row["reference"] = peak_of(args.reference, audio, Path(tmp) / "z_ref.safetensors")
            audio.unlink()
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0]["streamed"]["peak_mb"]
    lines = ["# Peak memory of `dashtok encode` against input duration", "",
             f"Bundled default model, one 16 kHz mono FLAC per duration, peak resident set size of the whole "
             f"process (Python, torch, model and all), {os.cpu_count()} CPUs.", "",
             "| input | streamed: peak MB | vs first row | seconds | before (whole file held): peak MB | seconds |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        s, ref = r["streamed"], r.get("reference")
        lines.append(f"| {r['minutes']:g} min | {s['peak_mb']:.0f} | {100 * (s['peak_mb'] / base - 1):+.1f} % | "
                     f"{s['seconds']:.0f} | {ref['peak_mb'] if ref else float('nan'):.0f} | "
                     f"{ref['seconds'] if ref else float('nan'):.0f} |")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "encode_memory.json").write_text(json.dumps(rows, indent=2))
    (out / "encode_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
