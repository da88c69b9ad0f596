"""Corpus-scale encoding throughput (issue 27): hours of audio encoded per hour of wall time, and peak memory, for
``dashtok encode --shards`` with 1 or more processes (torchrun) and several reader-worker counts.

The corpus is made here: ``--clips`` files of 4-16 s at 44.1 kHz stereo FLAC (what datasets ship; every file is
decoded, mixed to mono and resampled to 16 kHz), cut from the bundled speech clip with noise. Each configuration runs
in a fresh process tree on the bundled default model; its peak resident memory is the largest process's
(``ru_maxrss`` of the children). Results: a markdown table and JSON.

    .venv/bin/python benchmarks/encode_corpus.py -o benchmarks/cpu_2core/encode_corpus
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from dashtok.audio_io import load_audio, resample
from dashtok.checkpoint import bundled_path

PROBE = ("import resource, subprocess, sys, time; t = time.perf_counter(); r = subprocess.run(sys.argv[1:]); "
         "print(r.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def make_corpus(folder: Path, clips: int, seed: int) -> float:
    """``clips`` 44.1 kHz stereo FLAC files of 4-16 s; returns their total duration in seconds."""
    rng = np.random.default_rng(seed)
    speech = resample(load_audio(bundled_path("demo_speech.flac")), 16000, 44100)
    total = 0.0
    for i in range(clips):
        n = int(rng.uniform(4, 16) * 44100)
        start = int(rng.integers(0, max(1, len(speech) - n)))
        x = np.resize(speech[start:], n) * rng.uniform(0.3, 1.0)
        stereo = np.stack([x, x * 0.8], axis=1) + 0.003 * rng.standard_normal((n, 2))
        sf.write(folder / f"clip{i:05d}.flac", np.clip(stereo, -1, 1).astype(np.float32), 44100)
        total += n / 44100
    return total


def run(config: dict[str, int], corpus: Path, out: Path) -> dict[str, float]:
    dashtok = [sys.executable, "-m", "dashtok", "encode", str(corpus), "--shards", str(out), "-q",
               "--workers", str(config["workers"]), "--batch-size", str(config["batch_size"])]
    procs = config["processes"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}",
                "-m", "dashtok"] if procs > 1 else dashtok[:3]
    cmd = [*launcher, *dashtok[3:]]
    env = {**os.environ, "OMP_NUM_THREADS": str(config["threads"])}
    res = subprocess.run([sys.executable, "-c", PROBE, *cmd], env=env, capture_output=True, text=True, check=True)
    code, wall, rss_kb = res.stdout.strip().splitlines()[-1].split()
    if int(code) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return {"wall_s": float(wall), "peak_rss_mb": int(rss_kb) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", required=True, help="folder for encode_corpus.json and .md")
    ap.add_argument("--clips", type=int, default=120, help="files in the corpus (default: 120, about 20 min)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    configs = [{"processes": 1, "threads": cores, "workers": w, "batch_size": 8} for w in (0, 1, 2)]
    configs += [{"processes": cores, "threads": 1, "workers": w, "batch_size": 8} for w in (0, 1)]
    configs += [{"processes": 1, "threads": cores, "workers": 1, "batch_size": 1}]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        seconds = make_corpus(corpus, args.clips, args.seed)
        t0 = time.perf_counter()  # the reader alone, one process: decode, mix to mono, resample (what a worker does)
        for f in sorted(corpus.glob("*.flac")):
            load_audio(f, 16000)
        reader = seconds / (time.perf_counter() - t0)
        print(json.dumps({"reader_hours_per_hour_one_process": reader}), flush=True)
        for i, config in enumerate(configs):
            measured = run(config, corpus, Path(tmp) / f"shards{i}")
            rows.append({**config, **measured, "audio_hours": seconds / 3600,
                         "hours_per_hour": seconds / measured["wall_s"]})
            print(json.dumps(rows[-1]), flush=True)
    report = {"machine": platform.processor() or platform.machine(), "cores": cores, "torch": torch.__version__,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "clips": args.clips,
              "audio_hours": seconds / 3600, "model": "bundled default",
              "reader_hours_per_hour_one_process": reader, "rows": rows}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "encode_corpus.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# dashtok encode --shards: {args.clips} files, {seconds / 60:.1f} min of 44.1 kHz stereo FLAC, "
             f"bundled default model, {cores} cores ({report['cpu_capability']})", "",
             "| processes | threads each | reader workers | batch | wall s | hours of audio per hour | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['processes']} | {r['threads']} | {r['workers']} | {r['batch_size']} | {r['wall_s']:.1f} | "
              f"{r['hours_per_hour']:.0f} | {r['peak_rss_mb']:.0f} |" for r in rows]
    lines += ["", f"Reading alone (decode, mix to mono, resample to 16 kHz; one process): {reader:.0f} hours of audio "
              f"per hour."]
    (out / "encode_corpus.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
