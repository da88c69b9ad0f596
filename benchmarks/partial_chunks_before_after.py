"""Before/after of cutting partial chunks to their length (encoder.py at 496cc0c vs now), base preset, random weights.

    git show 496cc0c:src/dashtok/encoder.py > /tmp/probe/old_encoder.py
    python benchmarks/partial_chunks_before_after.py [/tmp/probe/old_encoder.py]
"""

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dashtok.bench import test_signal
from dashtok.config import EncoderConfig, FrontendConfig
from dashtok.encoder import DashengEncoder


def best(f: Callable[..., object]) -> float:  # ...: the lambdas below bind x as a default argument
    f()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/probe/old_encoder.py")
    spec = importlib.util.spec_from_file_location("old_encoder", path)
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    torch.manual_seed(0)
    new = DashengEncoder(FrontendConfig(), EncoderConfig.preset("base")).eval()
    prev = old.DashengEncoder(FrontendConfig(), EncoderConfig.preset("base")).eval()
    prev.load_state_dict(new.state_dict())
    with torch.no_grad():
        for s in (1.0, 2.5, 5.0, 15.0):
            x = torch.from_numpy(test_signal(s, 1))
            a, b = best(lambda x=x: prev(x)), best(lambda x=x: new(x))
            d = (prev(x) - new(x)).abs().max().item()
            print(f"| base encoder, {s:.1f} s clip | before {a:.3f} s, after {b:.3f} s | {b:.3f} | "
                  f"{a / b:.2f}x faster (max diff {d:.1e}) |")


if __name__ == "__main__":
    main()
