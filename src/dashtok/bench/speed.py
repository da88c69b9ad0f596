"""``dashtok bench``: measured speed and memory of encode and decode, against upstream and the compute floor.

For every preset x precision x duration x batch size it times ``Tokenizer.encode`` and ``Tokenizer.decode`` on
random weights (speed does not depend on their values) and reports:

- real-time factor (seconds of compute per second of audio, all items together), and the peak memory the call
  added, measured in a fresh process (CPU: resident set size sampled every 5 ms; GPU:
  ``torch.cuda.max_memory_allocated``);
- the compute floor: FLOPs of the call (``torch.utils.flop_counter``: matmuls, convolutions, attention) divided
  by this machine's measured matmul throughput in the same precision, and the measured time over that floor;
- with ``--upstream-python``: the upstream ``dasheng`` encoder (another interpreter, see ``worker.py``)
  on the same weights and input, as a time ratio, with the largest difference of the outputs; and our encoder
  code run by that same interpreter, which separates the code's effect from the torch version's;
- with ``--official-code`` too: the official DashengTokenizer remote code's ``encode`` and ``decode`` on the same
  weights (written in the official layout by ``dashtok.release``) and input, time ratios, peak memory (a fresh
  process each side) and the largest differences of latents and audio.

Results go to ``bench.json`` and ``bench.md``. Timings are medians of ``repeats`` runs after a warm-up run.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from dashtok.bench.compare import official_code, upstream_encoder
from dashtok.checkpoint import bundled_path
from dashtok.config import SAMPLE_RATE, TokenizerConfig
from dashtok.precision import autocast_for, set_precision
from dashtok.tokenizer import Tokenizer

SR = SAMPLE_RATE


@dataclass
class BenchConfig:
    presets: tuple[str, ...] = ("small", "base", "release")
    precisions: tuple[str, ...] = ("fp32",)
    seconds: tuple[float, ...] = (10.0, 600.0)
    batch_sizes: tuple[int, ...] = (1, 4)
    max_batched_seconds: float = 60.0  # batch sizes > 1 only for inputs up to this long
    repeats: int = 3
    long_repeats: int = 1  # runs of inputs longer than 60 s
    device: str = "cpu"
    upstream_python: str | None = None
    upstream_max_seconds: float = 600.0
    measure_memory: bool = True  # in a fresh process per case
    upstream_impls: tuple[str, ...] = ("upstream", "dashtok")  # "dashtok": our code on the upstream interpreter
    official_code: str | None = None  # a copy of audiohacking/audiogen.cpp (reference/ = the release's code)
    extra: dict[str, Any] = field(default_factory=dict)


# ---- measurement helpers -----------------------------------------------------------------------------------------
def _return_freed_memory() -> None:
    """Make glibc hand large freed blocks back to the OS, so the resident set size shows each call's own peak."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD fixed at 1 MiB: no dynamic growth, big blocks are mmapped
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Peak memory added during the block, in MB (GPU: allocator peak; CPU: sampled resident set size)."""
    result = {"peak_mb": 0.0}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        allocated = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        torch.cuda.synchronize(device)
        result["peak_mb"] = (torch.cuda.max_memory_allocated(device) - allocated) / 2**20
        return
    _return_freed_memory()
    base = _rss_mb()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.005)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        yield result
    finally:
        done.set()
        watcher.join()
        result["peak_mb"] = max(0.0, max(peak[0], _rss_mb()) - base)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    """Median seconds of ``repeats`` runs, and the FLOPs counted on a warm-up run (matmuls, convolutions and
    attention in float or bf16/fp16; int8 quantized layers are not counted)."""
    with FlopCounterMode(display=False) as counter:
        fn()  # warm-up, also counts FLOPs
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(counter.get_total_flops())


def measure_memory(preset: str, precision: str, seconds: float, batch: int, device: str) -> dict[str, float]:
    """Peak memory added by one encode and one decode, in a fresh process (CPU: glibc set to return freed blocks,
    which would slow the timed runs; so memory is never measured in the process that times)."""
    job = json.dumps({"preset": preset, "precision": precision, "seconds": seconds, "batch": batch,
                      "device": device})
    proc = subprocess.run([sys.executable, "-m", "dashtok.bench", job], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement failed: {proc.stderr.strip()[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _memory_main(job: dict[str, Any]) -> None:
    device = torch.device(job["device"])
    if device.type == "cpu":
        _return_freed_memory()
    model = _model(job["preset"], job["precision"], device)
    x = torch.from_numpy(test_signal(job["seconds"], job["batch"])).to(device)
    with torch.no_grad():
        with peak_memory(device) as enc:
            z = model.encode(x).latents
        with peak_memory(device) as dec:
            model.decode(z)
    print(json.dumps({"encode_peak_mb": enc["peak_mb"], "decode_peak_mb": dec["peak_mb"]}))


def _count_flops(fn: Callable[[], object]) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_throughput(device: torch.device, precision: str, seconds: float = 1.0) -> float:
    """Best measured GFLOP/s of square matmuls (sizes 1024-4096) in the precision's compute type."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    best = 0.0
    for n in (1024, 2048, 4096):
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        a @ b
        _sync(device)
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3 or count < 2:
            a @ b
            count += 1
        _sync(device)
        best = max(best, 2 * n**3 * count / (time.perf_counter() - t0) / 1e9)
    return best


def int8_matmul_throughput(seconds: float = 1.0) -> float:
    """GFLOP/s (counting int8 multiply-adds as 2 ops) of a dynamically quantized linear layer on CPU."""
    n = 2048
    with warnings.catch_warnings():  # torch marks its eager quantization API as deprecated (still in 2.13)
        warnings.simplefilter("ignore")
        layer = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(n, n)),
                                                       {torch.nn.Linear}, dtype=torch.qint8)
    x = torch.randn(n, n)
    with torch.no_grad():
        layer(x)
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or count < 2:
            layer(x)
            count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0) / 1e9


def test_signal(seconds: float, batch: int, seed: int = 0) -> np.ndarray:
    """(batch, T) speech-like input: the bundled LibriVox clip tiled, each item from another offset, plus noise."""
    from dashtok.audio_io import load_audio

    clip = load_audio(bundled_path("demo_speech.flac"), SR)
    n = int(seconds * SR)
    rng = np.random.default_rng(seed)
    reps = -(-(n + len(clip)) // len(clip))
    tiled = np.tile(clip, reps)
    items = [tiled[(i * len(clip)) // max(1, batch) :][:n] for i in range(batch)]
    return (np.stack(items) + 0.003 * rng.standard_normal((batch, n))).astype(np.float32)


# ---- the benchmark -----------------------------------------------------------------------------------------------
def _model(preset: str, precision: str, device: torch.device) -> Tokenizer:
    torch.manual_seed(0)
    model = Tokenizer(TokenizerConfig.preset(preset)).to(device).eval()
    return set_precision(model, precision)


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    device = torch.device(cfg.device)
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "device": str(device),
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "config": {k: v for k, v in cfg.__dict__.items()}, "throughput_gflops": {}, "results": [], "_flops": {},
        "_latents": {}, "_official": {}}
    for precision in cfg.precisions:
        tp = int8_matmul_throughput() if precision == "int8" else matmul_throughput(device, precision)
        report["throughput_gflops"][precision] = tp
        log(f"matmul throughput {precision}: {tp:.0f} GFLOP/s")
    with torch.no_grad():
        for preset in cfg.presets:
            for precision in cfg.precisions:
                model = _model(preset, precision, device)
                for seconds in cfg.seconds:
                    for batch in cfg.batch_sizes:
                        if batch > 1 and seconds > cfg.max_batched_seconds:
                            continue
                        report["results"].append(_one_case(cfg, report, model, preset, precision, seconds, batch,
                                                           device, log))
                del model
                if preset in report["_official"]:
                    report["_official"].pop(preset).cleanup()
    del report["_flops"], report["_latents"], report["_official"]
    return report


def _one_case(cfg: BenchConfig, report: dict[str, Any], model: Tokenizer, preset: str, precision: str,
              seconds: float, batch: int, device: torch.device, log: Callable[[str], None]) -> dict[str, Any]:
    wav = test_signal(seconds, batch)
    x = torch.from_numpy(wav).to(device)
    repeats = cfg.repeats if seconds <= 60 else cfg.long_repeats
    audio_seconds = seconds * batch
    throughput = report["throughput_gflops"][precision] * 1e9
    enc_s, enc_flops = time_call(lambda: model.encode(x), device, repeats)
    z = model.encode(x).latents
    dec_s, dec_flops = time_call(lambda: model.decode(z), device, repeats)
    mem = measure_memory(preset, precision, seconds, batch, str(device)) if cfg.measure_memory else \
        {"encode_peak_mb": float("nan"), "decode_peak_mb": float("nan")}
    enc_mb, dec_mb = mem["encode_peak_mb"], mem["decode_peak_mb"]
    key = f"{preset}/{seconds}/{batch}"
    if precision == "fp32":
        report["_latents"][key] = z
    reference = report["_latents"].get(key)
    if precision == "int8":  # the quantized layers escape the FLOP counter: the float model's count is the work
        if key not in report["_flops"]:
            twin = _model(preset, "fp32", device)
            report["_flops"][key] = (_count_flops(lambda: twin.encode(x)), _count_flops(lambda: twin.decode(z)))
        enc_flops, dec_flops = report["_flops"][key]
    else:
        report["_flops"][key] = (enc_flops, dec_flops)
    row: dict[str, Any] = {
        "preset": preset, "precision": precision, "seconds": seconds, "batch": batch,
        "latent_dim": model.latent_dim,
        "encode": {"time_s": enc_s, "rtf": enc_s / audio_seconds, "peak_mb": enc_mb, "gflop": enc_flops / 1e9,
                   "floor_s": enc_flops / throughput, "over_floor": enc_s / (enc_flops / throughput)},
        "latent_rel_error_vs_fp32": None if reference is None else float((z - reference).norm() / reference.norm()),
        "decode": {"time_s": dec_s, "rtf": dec_s / audio_seconds, "peak_mb": dec_mb, "gflop": dec_flops / 1e9,
                   "floor_s": dec_flops / throughput, "over_floor": dec_s / (dec_flops / throughput)},
    }
    if cfg.upstream_python and cfg.official_code and precision == "fp32" and device.type == "cpu":
        row["official"] = official_code(str(cfg.upstream_python), str(cfg.official_code), model, wav, z, enc_s,
                                        dec_s, mem, repeats, report, preset)
    if cfg.upstream_python and cfg.upstream_impls and precision == "fp32" and device.type == "cpu" and \
            seconds <= cfg.upstream_max_seconds:
        with tempfile.TemporaryDirectory() as tmp:
            up = upstream_encoder(str(cfg.upstream_python), cfg.upstream_impls, model, wav, repeats, Path(tmp))
        with autocast_for(precision, device):
            ours_s, _ = time_call(lambda: model.encoder(x), device, repeats)
        row["upstream"] = {"ours_encoder_s": ours_s, **up}
        if "upstream" in up:
            row["upstream"]["speedup"] = up["upstream"]["seconds"] / ours_s
            if "dashtok" in up:
                row["upstream"]["speedup_same_torch"] = up["upstream"]["seconds"] / up["dashtok"]["seconds"]
    log(_line(row))
    return row


def _line(r: dict[str, Any]) -> str:
    e, d = r["encode"], r["decode"]
    s = (f"{r['preset']:8s} {r['precision']:5s} {r['seconds']:6.0f} s x{r['batch']}: encode RTF {e['rtf']:.4f} "
         f"({e['over_floor']:.2f}x floor, +{e['peak_mb']:.0f} MB), decode RTF {d['rtf']:.4f} "
         f"({d['over_floor']:.2f}x floor, +{d['peak_mb']:.0f} MB)")
    if "official" in r:
        o = r["official"]
        s += (f"; official code / ours: encode {o['encode_speedup']:.2f}x, decode {o['decode_speedup']:.2f}x "
              f"(+{o['encode_peak_mb']:.0f} / +{o['decode_peak_mb']:.0f} MB; max rel diff latents "
              f"{o['latents_max_rel_diff']:.1e}, audio {o['audio_max_rel_diff']:.1e})")
    if "speedup" in r.get("upstream", {}):
        u = r["upstream"]
        same = f"same torch {u['speedup_same_torch']:.2f}x, " if "speedup_same_torch" in u else ""
        diff = u["upstream"]["max_abs_diff_vs_ours"]
        s += f"; upstream encoder / ours {u['speedup']:.2f}x ({same}max diff {diff:.1e})"
    return s


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    tp = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report["throughput_gflops"].items())
    lines = ["# dashtok bench", "",
             f"Machine: {m['processor']} ({m['platform']}, CPU capability {m.get('cpu_capability', '?')}), "
             f"torch {m['torch']}, {m['threads']} threads, "
             f"device {m['device']}{' (' + m['gpu'] + ')' if m['gpu'] else ''}. Matmul throughput: {tp}.", "",
             "RTF = compute seconds per second of audio (all items). Floor = FLOPs / matmul throughput; "
             "'x floor' = measured / floor. Memory = peak added by the call.", "",
             "| preset | precision | input | encode RTF | x floor | MB | decode RTF | x floor | MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        e, d = r["encode"], r["decode"]
        lines.append(f"| {r['preset']} | {r['precision']} | {r['seconds']:.0f} s x {r['batch']} | {e['rtf']:.4f} | "
                     f"{e['over_floor']:.2f} | {e['peak_mb']:.0f} | {d['rtf']:.4f} | {d['over_floor']:.2f} | "
                     f"{d['peak_mb']:.0f} |")
    offs = [r for r in report["results"] if "official" in r]
    if offs:
        lines += ["", f"## vs the official DashengTokenizer remote code (same weights and input; official code on "
                      f"torch {offs[0]['official']['torch']}, {offs[0]['official']['threads']} threads)", "",
                  "| preset | input | encode: official s | ours s | speedup | decode: official s | ours s | speedup "
                  "| encode MB official / ours | decode MB official / ours | max rel diff latents / audio |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in offs:
            o = r["official"]
            lines.append(f"| {r['preset']} | {r['seconds']:.0f} s x {r['batch']} | {o['encode_s']:.2f} | "
                         f"{r['encode']['time_s']:.2f} | {o['encode_speedup']:.2f}x | {o['decode_s']:.2f} | "
                         f"{r['decode']['time_s']:.2f} | {o['decode_speedup']:.2f}x | "
                         f"{o['encode_peak_mb']:.0f} / {o['ours_encode_peak_mb']:.0f} | "
                         f"{o['decode_peak_mb']:.0f} / {o['ours_decode_peak_mb']:.0f} | "
                         f"{o['latents_max_rel_diff']:.1e} / {o['audio_max_rel_diff']:.1e} |")
    ups = [r for r in report["results"] if "speedup" in r.get("upstream", {})]
    if ups:
        u0 = ups[0]["upstream"]
        lines += ["", f"## Encoder vs upstream `dasheng` (same weights, same input; upstream on torch "
                      f"{u0['upstream']['torch']})", "",
                  "| preset | input | upstream s | ours s | speedup | ours on upstream's torch: speedup | "
                  "max abs diff |", "|---|---|---|---|---|---|---|"]
        for r in ups:
            u = r["upstream"]
            same = f"{u['speedup_same_torch']:.2f}x" if "speedup_same_torch" in u else "-"
            lines.append(f"| {r['preset']} | {r['seconds']:.0f} s x {r['batch']} | {u['upstream']['seconds']:.2f} | "
                         f"{u['ours_encoder_s']:.2f} | {u['speedup']:.2f}x | {same} | "
                         f"{u['upstream']['max_abs_diff_vs_ours']:.1e} |")
        upstream_s = {(r["preset"], r["seconds"], r["batch"]): r["upstream"]["upstream"]["seconds"] for r in ups}
        lines += ["", "## Whole encode (front end + encoder + injection) at each precision vs upstream's fp32 encoder",
                  "", "| preset | input | precision | ours s | upstream s | speedup | latent error vs fp32 |",
                  "|---|---|---|---|---|---|---|"]
        for r in report["results"]:
            k = (r["preset"], r["seconds"], r["batch"])
            if k in upstream_s:
                err = r["latent_rel_error_vs_fp32"]
                lines.append(f"| {r['preset']} | {r['seconds']:.0f} s x {r['batch']} | {r['precision']} | "
                             f"{r['encode']['time_s']:.2f} | {upstream_s[k]:.2f} | "
                             f"{upstream_s[k] / r['encode']['time_s']:.2f}x | "
                             f"{'-' if err is None else f'{err:.1e}'} |")
    return "\n".join(lines) + "\n"


def memory_child_main() -> None:
    """``python -m dashtok.bench JOB``: the memory-measuring child of ``measure_memory``."""
    _memory_main(json.loads(sys.argv[1]))
