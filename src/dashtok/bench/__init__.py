"""``dashtok bench``: measured speed and memory of encode and decode (``speed.py``), against the upstream Dasheng
encoder and the official DashengTokenizer code run by another interpreter (``worker.py``) and the compute floor.

A feature package: it imports the core, the core never imports it.
"""

from dashtok.bench.speed import BenchConfig, markdown, peak_memory, run_bench, test_signal

__all__ = ["BenchConfig", "markdown", "peak_memory", "run_bench", "test_signal"]
