"""Binary ROC AUC with 200 thresholds: gpumetrics (threshold_histogram op) beside numpy, scikit-learn,
torchmetrics and Keras, on float32 scores with uint8 labels.

    python benchmarks/bench_threshold_histogram.py            # 10^7 and 10^8 scores (a few minutes on 2 cores)
    python benchmarks/bench_threshold_histogram.py --quick    # 10^5 scores: checks the script runs (CI)
    (with CuPy and a GPU the CUDA path is timed too: 10^7, 10^8 and 10^9 scores; --quick: 10^6)

The op must read 5 bytes per element (a float32 score and a uint8 label), so the floor is bandwidth / 5
elements per second. Peers that are too slow for the full size (scikit-learn and the exact modes, Keras,
torchmetrics with 200 thresholds) run at a smaller n and are reported per element. Every row of one table
computes the same quantity on the same data (the value column shows it).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import Table, cpu_read_bandwidth, cuda_available, gpu_read_bandwidth, gpu_seconds, have, \
    median_seconds, parse_args  # noqa: E402

from gpumetrics.functional.threshold import roc_auc  # noqa: E402
from gpumetrics.metrics.threshold import AUC  # noqa: E402

T = 200
BYTES = 5  # float32 score + uint8 label


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.uint8)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1).astype(np.float32)  # informative scores, AUC ~ 0.85
    return y, p


def numpy_baseline(y, p, t=T):
    """Keras' bucket formula and one bincount: the plain-numpy O(n + T) binned AUC."""
    b = np.ceil(np.clip(p, 0, 1) * np.float32(t - 1)).astype(np.int64) - 1
    np.maximum(b, 0, out=b)
    hist = np.bincount(b * 2 + y, minlength=2 * t).reshape(t, 2)
    tp = np.cumsum(hist[::-1, 1])[::-1].astype(np.float64)
    fp = np.cumsum(hist[::-1, 0])[::-1].astype(np.float64)
    tpr, fpr = tp / tp[0], fp / fp[0]
    return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2))


def interleaved(fns: dict, reps: int) -> dict:
    """Median seconds of each function, timed round-robin (one call of each per round, after one warm-up
    round), so that the load changes of a shared machine fall on every row alike."""
    import statistics
    import time

    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _one_thread(fn, *args, **kwargs):
    """``fn`` with Numba's pool limited to one thread: the op runs serially and never waits for the pool to
    wake (on a shared VM, waking GNU OpenMP threads after an idle spell can cost milliseconds)."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return fn(*args, **kwargs)
    finally:
        numba.set_num_threads(previous)


def ours(y, p, **kwargs):
    metric = AUC(**kwargs)
    metric.update_state(y, p)
    return metric.result()


def main() -> None:
    args = parse_args(__doc__)
    sizes = [10**5] if args.quick else [10**7, 10**8]
    small = 10**4 if args.quick else 10**6  # per-element rows for the slow peers
    reps = 2 if args.quick else args.reps
    bandwidth = cpu_read_bandwidth(10**7 if args.quick else 10**9)
    user_list = np.linspace(0.0005, 0.9995, 1000).tolist()  # not evenly spaced on [0, 1]: the search path
    tables, checks = [], []
    for n in sizes:
        print(f"binary ROC AUC, n={n:.0e}", flush=True)
        y, p = _data(n)
        table = Table(f"binary ROC AUC, {T} thresholds, {n:.0e} float32 scores + uint8 labels (CPU)", BYTES,
                      bandwidth, baseline="numpy bucket+bincount")
        # The three O(n) rows are timed round-robin: their ratios are the benchmark's goals.
        main_rows = {"gpumetrics AUC(200)": lambda: ours(y, p),
                     "gpumetrics AUC(200), 1 thread": lambda: _one_thread(ours, y, p),
                     "gpumetrics AUC(thresholds=1000 list)": lambda: ours(y, p, thresholds=user_list),
                     "numpy bucket+bincount": lambda: numpy_baseline(y, p)}
        for name, seconds in interleaved(main_rows, reps).items():
            table.add(name, n, seconds, main_rows[name]())
        if not args.skip_peers:
            m = min(n, small * 10)
            ym, pm = y[:m], p[:m]
            table.add("gpumetrics exact roc_auc (sort)", m,
                      median_seconds(lambda: roc_auc(ym, pm, exact=True), max(1, reps // 2)),
                      roc_auc(ym, pm, exact=True))
            if have("sklearn"):
                from sklearn.metrics import roc_auc_score

                ys, ps = y[:small], p[:small]
                table.add("scikit-learn roc_auc_score (exact)", small,
                          median_seconds(lambda: roc_auc_score(ys, ps), max(1, reps // 2)), roc_auc_score(ys, ps))
            if have("torchmetrics"):
                import torch
                from torchmetrics.functional.classification import binary_auroc

                tm = min(n, small * 10)
                ty, tp_ = torch.from_numpy(y[:tm]), torch.from_numpy(p[:tm])
                exact = lambda: binary_auroc(tp_, ty, thresholds=None, validate_args=False)  # noqa: E731
                table.add("torchmetrics binary_auroc(thresholds=None)", tm,
                          median_seconds(exact, max(1, reps // 2)), exact())
                sy, sp = torch.from_numpy(y[:small]), torch.from_numpy(p[:small])
                binned = lambda: binary_auroc(sp, sy, thresholds=T, validate_args=False)  # noqa: E731
                table.add("torchmetrics binary_auroc(thresholds=200)", small,
                          median_seconds(binned, max(1, reps // 2)), binned())
            if have("keras") and n <= 10**7:
                import keras

                def keras_call():
                    metric = keras.metrics.AUC(num_thresholds=T)
                    metric.update_state(y, p)
                    return keras.ops.convert_to_numpy(metric.result())

                table.add("keras AUC(200)", n, median_seconds(keras_call, max(1, reps // 2)), keras_call())
        tables.append(table)
        ours_rate, base = table.rate("gpumetrics AUC(200)"), table.rate("numpy bucket+bincount")
        checks.append(f"n={n:.0e}: gpumetrics / numpy = {ours_rate / base:.1f}x (goal >= 3x)")
        if table.rate("keras AUC(200)"):
            checks.append(f"n={n:.0e}: gpumetrics / keras = {ours_rate / table.rate('keras AUC(200)'):.0f}x "
                          f"(goal >= 100x)")
        checks.append(f"n={n:.0e}: 1000-threshold list / default 200 time = "
                      f"{ours_rate / table.rate('gpumetrics AUC(thresholds=1000 list)'):.2f} (goal <= 2)")
        del y, p
    if cuda_available():  # with CuPy and a GPU the CUDA path is always timed (--gpu or not)
        tables.append(_gpu_table(args, user_list))
    print()
    for table in tables:
        print(table.render(), end="\n\n")
    print("\n".join(checks))


def _gpu_table(args, user_list) -> Table:
    """The CUDA path: one update of the whole array (device time), against the device's read bandwidth."""
    import cupy

    table = Table(f"binary ROC AUC, {T} thresholds, float32 scores + uint8 labels (GPU)", BYTES,
                  gpu_read_bandwidth(10**9 if args.quick else 4 * 10**9), baseline=None)
    for n in ([10**6] if args.quick else [10**7, 10**8, 10**9]):
        print(f"GPU n={n:.0e}", flush=True)
        gy = (cupy.random.random(n, dtype=cupy.float32) < 0.4).astype(cupy.uint8)
        gp = cupy.random.random(n, dtype=cupy.float32)
        for label, kwargs in (("gpumetrics AUC(200)", {}), ("gpumetrics AUC(thresholds=1000 list)",
                                                            {"thresholds": user_list})):
            metric = AUC(**kwargs)
            seconds = gpu_seconds(lambda metric=metric: metric.update_state(gy, gp), args.reps)
            table.add(f"{label}, n={n:.0e}", n, seconds, metric.result().get())
        del gy, gp
        cupy.get_default_memory_pool().free_all_blocks()
    return table


if __name__ == "__main__":
    main()
