"""Side-by-side runs for ``dashtok bench``: the upstream ``dasheng`` encoder and the official DashengTokenizer remote
code, each run by another Python interpreter (``worker.py``) on the same weights and input as ours."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dashtok.config import SAMPLE_RATE
from dashtok.tokenizer import Tokenizer

SR = SAMPLE_RATE


def upstream_encoder(python: str, impls: tuple[str, ...], model: Tokenizer, wav: np.ndarray, repeats: int,
                     tmp: Path) -> dict[str, Any]:
    """Time upstream's encoder and ours under the upstream interpreter, on the same weights and input."""
    from safetensors.torch import save_file

    enc = model.encoder
    weights, inp = tmp / "encoder.safetensors", tmp / "input.npy"
    save_file({k: v.detach().cpu().contiguous() for k, v in enc.state_dict().items()}, str(weights))
    np.save(inp, wav)
    with torch.no_grad():
        ours = enc(torch.from_numpy(wav).to(model.device)).float().cpu().numpy()
    c = enc.config
    out: dict[str, Any] = {}
    # Our code on the upstream interpreter separates code from torch version; short inputs show it well enough.
    run = [i for i in impls if i == "upstream" or wav.shape[1] <= 60 * SR]
    for impl in run:
        job = {"impl": impl, "weights": str(weights), "input": str(inp), "output": str(tmp / f"{impl}.npy"),
               "repeats": repeats, "src": str(Path(__file__).resolve().parents[2]),
               "config": {"embed_dim": c.embed_dim, "depth": c.depth, "num_heads": c.num_heads,
                          "target_length": c.target_length}}
        (tmp / "job.json").write_text(json.dumps(job))
        proc = subprocess.run([python, str(Path(__file__).with_name("worker.py")),
                               str(tmp / "job.json")], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"upstream worker ({impl}) failed: {proc.stderr.strip()[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        feats = np.load(tmp / f"{impl}.npy")
        out[impl] = {"seconds": float(np.median(r["seconds"])), "torch": r["torch"], "threads": r["threads"],
                     "peak_mb": r["peak_mb"], "max_abs_diff_vs_ours": float(np.abs(feats - ours).max())}
    return out


def official_code(python: str, code: str, model: Tokenizer, wav: np.ndarray, z: torch.Tensor, enc_s: float,
                  dec_s: float, mem: dict[str, float], repeats: int, report: dict[str, Any], preset: str
                  ) -> dict[str, Any]:
    """The official remote code on the same weights (exported once per preset) and input: times, memory, diffs."""
    dirs = report["_official"]
    if preset not in dirs:
        dirs[preset] = tempfile.TemporaryDirectory()
        model.save_official(Path(dirs[preset].name) / "model")
    tmp = Path(dirs[preset].name)
    np.save(tmp / "input.npy", wav)
    np.save(tmp / "latents.npy", z.cpu().numpy())
    base = {"impl": "official", "code": code, "model_dir": str(tmp / "model"),
            "input": str(tmp / "input.npy"), "latents": str(tmp / "latents.npy"), "output": str(tmp / "out"),
            "repeats": repeats}
    results = []
    for job in (base, {**base, "memory": True}):
        (tmp / "job.json").write_text(json.dumps(job))
        proc = subprocess.run([python, str(Path(__file__).with_name("worker.py")),
                               str(tmp / "job.json")], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"official worker failed: {proc.stderr.strip()[-2000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    timing, memory = results
    with torch.no_grad():
        ours_audio = model.decode(z).audio.cpu().numpy()
    theirs_z, theirs_audio = np.load(tmp / "out.latents.npy"), np.load(tmp / "out.audio.npy")
    ours_z = z.cpu().numpy()
    off_enc, off_dec = float(np.median(timing["encode_s"])), float(np.median(timing["decode_s"]))
    return {"torch": timing["torch"], "threads": timing["threads"], "encode_s": off_enc, "decode_s": off_dec,
            "encode_speedup": off_enc / enc_s, "decode_speedup": off_dec / dec_s,
            "encode_peak_mb": memory["encode_peak_mb"], "decode_peak_mb": memory["decode_peak_mb"],
            "ours_encode_peak_mb": mem["encode_peak_mb"], "ours_decode_peak_mb": mem["decode_peak_mb"],
            "latents_max_abs_diff": float(np.abs(theirs_z - ours_z).max()),
            "latents_max_rel_diff": float(np.abs(theirs_z - ours_z).max() / np.abs(ours_z).max()),
            "audio_max_abs_diff": float(np.abs(theirs_audio - ours_audio).max()),
            "audio_max_rel_diff": float(np.abs(theirs_audio - ours_audio).max() / np.abs(ours_audio).max())}
