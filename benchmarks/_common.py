"""Shared pieces of the benchmark scripts: timing, the memory-bandwidth floor, and the printed table.

Every benchmark prints one table per op: gpumetrics next to its peers on the same data in the same run, in
elements per second, plus the floor that memory bandwidth sets (bytes the op must read / the best measured
multi-threaded read bandwidth of at least 1 GB in the same run). Machines are noisy: compare ratios.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs (CI)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--skip-peers", action="store_true", help="gpumetrics rows only")
    parser.add_argument("--gpu", action="store_true", help="also time the CUDA path (needs CuPy and a GPU)")
    return parser.parse_args()


def median_seconds(fn, reps: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``reps`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_read_bandwidth(nbytes: int = 10**9, reps: int = 3) -> float:
    """Best multi-threaded read bandwidth (bytes/s) over a float32 array of ``nbytes`` (Numba prange sum)."""
    from numba import njit, prange

    # fastmath lets LLVM vectorise the reduction, so the loop is bound by memory, not by the add chain
    @njit(parallel=True, cache=True, fastmath=True)
    def _sum(x):
        total = 0.0
        for i in prange(x.size):
            total += x[i]
        return total

    data = np.ones(nbytes // 4, dtype=np.float32)
    _sum(data[:1024])
    best = min(_timed(lambda: _sum(data)) for _ in range(reps))
    return data.nbytes / best


def gpu_read_bandwidth(nbytes: int = 4 * 10**9, reps: int = 5) -> float:
    """Device read bandwidth (bytes/s): a CuPy sum over ``nbytes`` of float32, timed with CUDA events."""
    import cupy

    data = cupy.ones(nbytes // 4, dtype=cupy.float32)
    return data.nbytes / gpu_seconds(lambda: data.sum(), reps)


def gpu_seconds(fn, reps: int = 5) -> float:
    """Median device time of ``fn()`` (CUDA events on the current stream)."""
    import cupy

    fn()
    cupy.cuda.Stream.null.synchronize()
    times = []
    for _ in range(reps):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return statistics.median(times)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Table:
    """Rows of (library, n, seconds); printed with elements/s, the ratio to a baseline, and % of the floor."""

    def __init__(self, title: str, bytes_per_element: float, bandwidth: float, baseline: str | None = None):
        self.title = title
        self.bytes_per_element = bytes_per_element
        self.bandwidth = bandwidth
        self.baseline = baseline
        self.rows: list[tuple[str, int, float, str]] = []

    def add(self, library: str, n: int, seconds: float, value=None) -> None:
        shown = "" if value is None else f"{float(value):.6f}"
        self.rows.append((library, int(n), float(seconds), shown))
        print(f"  {library}: {int(n) / seconds / 1e6:,.1f} Melem/s", flush=True)

    def rate(self, library: str) -> float | None:
        for name, n, seconds, _ in self.rows:
            if name == library:
                return n / seconds
        return None

    def render(self) -> str:
        floor = self.bandwidth / self.bytes_per_element
        base = self.rate(self.baseline) if self.baseline else None
        lines = [f"### {self.title}", "",
                 f"floor: {self.bytes_per_element:g} B/elem at {self.bandwidth / 1e9:.1f} GB/s read = "
                 f"{floor / 1e6:,.0f} Melem/s", "",
                 "| library | n | median ms | Melem/s | x " + (self.baseline or "-") + " | % of floor | value |",
                 "|---|---:|---:|---:|---:|---:|---|"]
        for name, n, seconds, value in self.rows:
            rate = n / seconds
            ratio = f"{rate / base:.2f}" if base else ""
            lines.append(f"| {name} | {n:.0e} | {seconds * 1e3:,.2f} | {rate / 1e6:,.1f} | {ratio} | "
                         f"{100 * rate / floor:.1f}% | {value} |")
        return "\n".join(lines)


def have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def cuda_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False
