"""Before/after of cutting partial chunks to their length (encoder.py at 496cc0c vs now), base preset, random weights.

    git show 496cc0c:src/dashtok/encoder.py > /tmp/probe/old_encoder.py
    python benchmarks/partial_chunks_before_after.py
"""
import importlib.util
import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "src"))
from dashtok.bench import test_signal
from dashtok.config import EncoderConfig, FrontendConfig
from dashtok.encoder import DashengEncoder

spec = importlib.util.spec_from_file_location("old", "/tmp/probe/old_encoder.py"); old = importlib.util.module_from_spec(spec); spec.loader.exec_module(old)
torch.manual_seed(0)
new = DashengEncoder(FrontendConfig(), EncoderConfig.preset("base")).eval()
prev = old.DashengEncoder(FrontendConfig(), EncoderConfig.preset("base")).eval(); prev.load_state_dict(new.state_dict())
def best(f):
    f(); ts=[]
    for _ in range(3):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return min(ts)
with torch.no_grad():
    for s in (1.0, 2.5, 5.0, 15.0):
        x = torch.from_numpy(test_signal(s, 1))
        a, b = best(lambda: prev(x)), best(lambda: new(x))
        d = (prev(x) - new(x)).abs().max().item()
        print(f"| base encoder, {s:.1f} s clip | before {a:.3f} s, after {b:.3f} s | {b:.3f} | {a/b:.2f}x faster (max diff {d:.1e}) |")
