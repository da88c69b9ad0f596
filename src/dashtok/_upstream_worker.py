"""Timing worker for ``dashtok bench``, run as a script by *another* Python interpreter (a benchmark environment
holding the upstream ``dasheng`` package and torchaudio). The library never imports this file.

    python _upstream_worker.py JOB.json     # prints one JSON line

JOB: {"impl": "upstream" | "dashtok", "config": {embed_dim, depth, num_heads, target_length}, "weights": a
safetensors file with the encoder's state dict (upstream key names, which dashtok shares), "input": a .npy (B, T)
float32 waveform, "output": where to write the (B, N, D) features, "repeats": timed runs, "src": dashtok's source
folder (impl "dashtok": our encoder code on this interpreter's torch, to separate code from torch version).
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def build(job: dict) -> torch.nn.Module:
    cfg = job["config"]
    if job["impl"] == "upstream":
        from dasheng.pretrained.pretrained import Dasheng

        model = Dasheng(embed_dim=cfg["embed_dim"], depth=cfg["depth"], num_heads=cfg["num_heads"],
                        target_length=cfg["target_length"])
    else:
        sys.path.insert(0, job["src"])
        from dashtok.config import EncoderConfig, FrontendConfig
        from dashtok.encoder import DashengEncoder

        model = DashengEncoder(FrontendConfig(top_db_scope="batch"), EncoderConfig(**cfg))
    model.load_state_dict(load_file(job["weights"]), strict=True)
    return model.eval()


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    torch.manual_seed(0)
    model = build(job)
    wav = torch.from_numpy(np.load(job["input"]))
    with torch.no_grad():
        model(wav)  # warm-up on the input itself, as dashtok bench does for ours
        times = []
        peak = [0.0]
        base = rss_mb()
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb())
                time.sleep(0.005)

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        for _ in range(int(job["repeats"])):
            t0 = time.perf_counter()
            out = model(wav)
            times.append(time.perf_counter() - t0)
        done.set()
        watcher.join()
    np.save(job["output"], out.float().numpy())
    print(json.dumps({"seconds": times, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "peak_mb": max(0.0, peak[0] - base), "impl": job["impl"]}))


if __name__ == "__main__":
    main()
