"""Peak memory of encode + decode against input length: does it stay bounded?

Each length runs in a fresh subprocess; the figure is the process's peak resident memory (ru_maxrss) minus that of
the same process after loading the model, so it is what the audio itself costs. Prints a markdown table.

    .venv/bin/python benchmarks/codec_memory.py [--preset small|release] [--minutes 1 4 16]
"""

import argparse
import json
import resource
import subprocess
import sys
import time


def child(preset: str, minutes: float) -> None:
    import numpy as np
    import torch

    from dashtok import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    model = Tokenizer.from_pretrained() if preset == "default" else Tokenizer(TokenizerConfig.preset(preset)).eval()
    model.encode(np.zeros(16000, dtype=np.float32))  # warm up allocator and kernels
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    x = (0.1 * np.random.default_rng(0).standard_normal(int(minutes * 60 * 16000))).astype(np.float32)
    t0 = time.perf_counter()
    enc = model.encode(x)
    t1 = time.perf_counter()
    dec = model.decode(enc.latents)
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    io_mb = (x.nbytes + enc.latents.numel() * 4 + dec.audio.numel() * 4) / 2**20
    print(json.dumps({"minutes": minutes, "peak_over_model_mb": (peak - base) / 1024, "inputs_outputs_mb": io_mb,
                      "encode_rtf": (t1 - t0) / (minutes * 60), "decode_rtf": (t2 - t1) / (minutes * 60)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", help="'default' (bundled model) or a TokenizerConfig preset")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 4, 16])
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.preset, args.child)
        return
    print(f"preset {args.preset}, torch threads as default\n")
    print("| minutes | peak memory over model (MB) | audio in + latents + audio out (MB) | encode RTF | decode RTF |")
    print("|---|---|---|---|---|")
    for m in args.minutes:
        out = subprocess.run([sys.executable, __file__, "--preset", args.preset, "--child", str(m)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {m:g} | {r['peak_over_model_mb']:.0f} | {r['inputs_outputs_mb']:.0f} | {r['encode_rtf']:.4f} | "
              f"{r['decode_rtf']:.4f} |")


if __name__ == "__main__":
    main()
