"""dashtok bench on the tiny preset: every number present, finite and consistent; the worker protocol round trips."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from dashtok.bench import BenchConfig, markdown, peak_memory, run_bench
from dashtok.cli import main


def test_bench_reports_consistent_numbers() -> None:
    cfg = BenchConfig(presets=("tiny",), precisions=("fp32", "int8"), seconds=(1.0, 3.0), batch_sizes=(1, 2),
                      repeats=1, max_batched_seconds=2.0, upstream_python=sys.executable,
                      upstream_impls=("dashtok",))  # the worker runs our code: same numbers as in-process
    report = run_bench(cfg, log=lambda _: None)
    rows = report["results"]
    assert [(r["precision"], r["seconds"], r["batch"]) for r in rows] == [
        ("fp32", 1.0, 1), ("fp32", 1.0, 2), ("fp32", 3.0, 1), ("int8", 1.0, 1), ("int8", 1.0, 2), ("int8", 3.0, 1)]
    for r in rows:
        for part in ("encode", "decode"):
            m = r[part]
            assert m["time_s"] > 0 and m["gflop"] > 0 and math.isfinite(m["over_floor"])
            assert m["rtf"] == m["time_s"] / (r["seconds"] * r["batch"])
            floor = m["gflop"] * 1e9 / (report["throughput_gflops"][r["precision"]] * 1e9)
            assert math.isclose(m["floor_s"], floor, rel_tol=1e-9)
    by = {(r["precision"], r["seconds"], r["batch"]): r for r in rows}
    # FLOPs scale with the audio, and int8 rows carry the float model's count
    assert by[("fp32", 1.0, 2)]["encode"]["gflop"] == 2 * by[("fp32", 1.0, 1)]["encode"]["gflop"]
    assert by[("int8", 3.0, 1)]["decode"]["gflop"] == by[("fp32", 3.0, 1)]["decode"]["gflop"]
    assert by[("fp32", 1.0, 1)]["latent_rel_error_vs_fp32"] == 0.0
    assert 0 < by[("int8", 1.0, 1)]["latent_rel_error_vs_fp32"] < 0.1
    worker = by[("fp32", 1.0, 2)]["upstream"]["dashtok"]
    assert worker["max_abs_diff_vs_ours"] < 1e-4 and worker["seconds"] > 0
    md = markdown(report)
    assert md.count("| tiny |") == 6 and "GFLOP/s" in md
    json.dumps(report)  # serialisable


def test_peak_memory_sees_an_allocation() -> None:
    with peak_memory(torch.device("cpu")) as mem:
        x = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
        x += 1
        import time

        time.sleep(0.05)
    assert 50 < mem["peak_mb"] < 200


def test_bench_cli_writes_json_and_markdown(tmp_path: Path) -> None:
    assert main(["bench", "-o", str(tmp_path), "--presets", "tiny", "--seconds", "1", "--batch", "1",
                 "--repeats", "1"]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert len(report["results"]) == 1 and (tmp_path / "bench.md").read_text().startswith("# dashtok bench")


def test_bench_cli_refuses_bad_values_before_timing_anything(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bench.json").write_text("{}")
    tiny = ["bench", "-o", str(tmp_path), "--presets", "tiny", "--seconds", "1", "--batch", "1", "--repeats", "1"]
    for extra, needle in ((["--seconds", "0"], "--seconds: must be more than 0, got 0"),
                          (["--batch", "0"], "--batch: must be at least 1, got 0"),
                          (["--repeats", "0"], "--repeats: must be at least 1, got 0"),
                          (["--threads", "-1"], "--threads: must be at least 0, got -1"),
                          (["--precision", "fp16"], "--precision fp16: fp16 inference needs a GPU"),
                          ([], f"{tmp_path / 'bench.json'} already exists; pass --force"),
                          (["-o", str(tmp_path / "bench.json")], "is a file; -o names the folder")):
        with pytest.raises(SystemExit) as exit_:
            main(tiny + extra)
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and needle in err[-1], err
    assert (tmp_path / "bench.json").read_text() == "{}"


def test_official_comparison_protocol_round_trips(tmp_path: Path) -> None:
    """The official-code side of the bench, with a stand-in for the remote code (dashtok behind the official
    class name and loading path): the exported weights reach it, outputs come back and match, numbers are there."""
    ref = tmp_path / "code" / "reference"
    ref.mkdir(parents=True)
    src = Path(__file__).resolve().parents[1] / "src"
    (ref / "modeling_dasheng_tokenizer.py").write_text(
        f"import sys\nsys.path.insert(0, {str(src)!r})\n"
        "from dashtok import Tokenizer\n\n\n"
        "class DashengTokenizerModel:\n"
        "    @classmethod\n"
        "    def from_pretrained(cls, path):\n"
        "        self = cls()\n"
        "        self.m = Tokenizer.from_official(path)\n"
        "        return self\n\n"
        "    def eval(self):\n        return self\n\n"
        "    def encode(self, wav):\n        return self.m.encode(wav).latents\n\n"
        "    def decode(self, z):\n        return self.m.decode(z).audio\n")
    cfg = BenchConfig(presets=("tiny",), seconds=(1.0,), batch_sizes=(1,), repeats=1, upstream_python=sys.executable,
                      upstream_impls=(), official_code=str(tmp_path / "code"))
    report = run_bench(cfg, log=lambda _: None)
    (row,) = report["results"]
    o = row["official"]
    assert o["latents_max_rel_diff"] < 1e-5 and o["audio_max_rel_diff"] < 1e-5
    assert o["encode_s"] > 0 and o["decode_s"] > 0 and o["encode_speedup"] > 0 and o["decode_peak_mb"] >= 0
    assert "official DashengTokenizer remote code" in markdown(report) and "upstream" not in row
