"""Sparse categorical and top-k accuracy on (N, C) float32 scores: gpumetrics (class_match op) beside
numpy, torchmetrics and Keras.

    python benchmarks/bench_class_match.py            # 10^7 rows x 10 classes
    python benchmarks/bench_class_match.py --quick    # 10^4 rows: checks the script runs

The op must read every score once (4 B) and the label (4 B int32) per row.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import Table, cpu_read_bandwidth, cuda_available, gpu_read_bandwidth, gpu_seconds, have, \
    median_seconds, parse_args  # noqa: E402

import gpumetrics as gm  # noqa: E402

CLASSES = 10


def main() -> None:
    args = parse_args(__doc__)
    n = 10**4 if args.quick else 10**7
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, n).astype(np.int32)
    scores = rng.standard_normal((n, CLASSES), dtype=np.float32)
    scores[np.arange(n), labels] += 1.0
    bandwidth = cpu_read_bandwidth(10**7 if args.quick else 10**9)
    bytes_per_row = 4 * CLASSES + 4
    tables = []
    for title, make, numpy_fn, keras_name, k in [
        ("SparseCategoricalAccuracy", gm.SparseCategoricalAccuracy,
         lambda: np.mean(np.argmax(scores, -1) == labels), "SparseCategoricalAccuracy", 1),
        ("SparseTopKCategoricalAccuracy(k=3)", lambda: gm.SparseTopKCategoricalAccuracy(k=3),
         lambda: np.mean((scores > scores[np.arange(n), labels][:, None]).sum(-1) < 3),
         "SparseTopKCategoricalAccuracy", 3),
    ]:
        print(f"{title}, {n:.0e} x {CLASSES}", flush=True)
        table = Table(f"{title}, {n:.0e} rows x {CLASSES} float32 scores (CPU, rows/s)", bytes_per_row,
                      bandwidth, baseline="numpy")

        def ours(make=make):
            metric = make()
            metric.update_state(labels, scores)
            return metric.result()

        table.add("gpumetrics", n, median_seconds(ours, args.reps), ours())
        table.add("numpy", n, median_seconds(numpy_fn, args.reps), numpy_fn())
        if not args.skip_peers and have("torchmetrics"):
            import torch
            from torchmetrics.functional.classification import multiclass_accuracy

            tl, ts = torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(scores)

            def tm():
                return multiclass_accuracy(ts, tl, CLASSES, average="micro", top_k=k, validate_args=False)

            table.add("torchmetrics", n, median_seconds(tm, args.reps), tm())
        if not args.skip_peers and have("keras"):
            import keras

            kwargs = {"k": k} if k > 1 else {}

            def keras_call():
                metric = getattr(keras.metrics, keras_name)(**kwargs)
                metric.update_state(labels, scores)
                return keras.ops.convert_to_numpy(metric.result())

            table.add("keras", n, median_seconds(keras_call, max(1, args.reps // 2)), keras_call())
        tables.append(table)
        if args.gpu and cuda_available():
            import cupy

            gl, gs = cupy.asarray(labels), cupy.asarray(scores)
            metric = make()
            gtable = Table(f"{title}, {n:.0e} rows (GPU)", bytes_per_row, gpu_read_bandwidth(), baseline="cupy")
            gtable.add("gpumetrics", n, gpu_seconds(lambda: metric.update_state(gl, gs)), None)
            gtable.add("cupy", n, gpu_seconds(lambda: cupy.mean(cupy.argmax(gs, -1) == gl)), None)
            tables.append(gtable)
    print()
    for table in tables:
        print(table.render(), end="\n\n")


if __name__ == "__main__":
    main()
