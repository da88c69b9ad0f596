"""Timing worker for ``dashtok bench``, run as a script by *another* Python interpreter (a benchmark environment
holding the upstream ``dasheng`` package, torchaudio, and for the official release's code transformers and einops).
The library never imports this file.

    python worker.py JOB.json     # prints one JSON line

JOB: {"impl": "upstream" | "dashtok", "config": {embed_dim, depth, num_heads, target_length}, "weights": a
safetensors file with the encoder's state dict (upstream key names, which dashtok shares), "input": a .npy (B, T)
float32 waveform, "output": where to write the (B, N, D) features, "repeats": timed runs, "src": dashtok's source
folder (impl "dashtok": our encoder code on this interpreter's torch, to separate code from torch version).

JOB {"impl": "official", "code": a copy of audiohacking/audiogen.cpp (its ``reference/`` folder is the release's
remote code), "model_dir": a directory in the official layout, "input": (B, T) waveform .npy, "latents": (B, N, D)
.npy to decode, "output": prefix of the outputs (``.latents.npy``, ``.audio.npy``), "repeats": timed runs,
"memory": true for a fresh process that measures the peak memory of one encode and one decode instead of timing}.
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


def peak_during(fn) -> float:  # type: ignore[no-untyped-def]
    """MB of resident memory added while ``fn`` runs (sampled every 5 ms)."""
    base, peak, done = rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.005)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    fn()
    done.set()
    watcher.join()
    return max(0.0, max(peak[0], rss_mb()) - base)


def official(job: dict) -> None:
    """The official DashengTokenizer remote code: encode and decode, timed (or their peak memory)."""
    sys.path.insert(0, job["code"])
    from reference.modeling_dasheng_tokenizer import DashengTokenizerModel

    model = DashengTokenizerModel.from_pretrained(job["model_dir"]).eval()
    wav = torch.from_numpy(np.load(job["input"]))
    latents = torch.from_numpy(np.load(job["latents"]))
    with torch.no_grad():
        if job.get("memory"):
            import ctypes  # as dashtok bench's memory child: glibc returns freed blocks, so each peak is its own

            # transformers may map the weights from the file: touch them all first (a short encode and decode),
            # so the peaks below are the calls' own memory, as for dashtok's model, which is built in memory
            model.decode(model.encode(wav[:, : min(wav.shape[1], 16000)])[:, :25])
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 1 << 20)
            libc.malloc_trim(0)
            enc_mb = peak_during(lambda: model.encode(wav))
            libc.malloc_trim(0)
            dec_mb = peak_during(lambda: model.decode(latents))
            print(json.dumps({"encode_peak_mb": enc_mb, "decode_peak_mb": dec_mb}))
            return
        z = model.encode(wav)  # warm-up runs, and the outputs compared with dashtok's
        audio = model.decode(latents)
        enc, dec = [], []
        for _ in range(int(job["repeats"])):
            t0 = time.perf_counter()
            model.encode(wav)
            enc.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model.decode(latents)
            dec.append(time.perf_counter() - t0)
    np.save(job["output"] + ".latents.npy", z.float().numpy())
    np.save(job["output"] + ".audio.npy", audio.float().numpy())
    print(json.dumps({"encode_s": enc, "decode_s": dec, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "impl": "official"}))


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    torch.manual_seed(0)
    if job["impl"] == "official":
        official(job)
        return
    model = build(job)
    wav = torch.from_numpy(np.load(job["input"]))
    times: list[float] = []
    outputs: list[torch.Tensor] = []

    def timed_runs() -> None:
        for _ in range(int(job["repeats"])):
            t0 = time.perf_counter()
            outputs[:] = [model(wav)]
            times.append(time.perf_counter() - t0)

    with torch.no_grad():
        model(wav)  # warm-up on the input itself, as dashtok bench does for ours
        peak_mb = peak_during(timed_runs)
    np.save(job["output"], outputs[0].float().numpy())
    print(json.dumps({"seconds": times, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "peak_mb": peak_mb, "impl": job["impl"]}))


if __name__ == "__main__":
    main()
