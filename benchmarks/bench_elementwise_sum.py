"""MAE and MSE on float32 pairs: gpumetrics (elementwise_sum op) beside numpy, torchmetrics and Keras.

    python benchmarks/bench_elementwise_sum.py            # 10^8 pairs (about 1 minute on 2 cores)
    python benchmarks/bench_elementwise_sum.py --quick    # 10^5 pairs: checks the script runs
    python benchmarks/bench_elementwise_sum.py --gpu      # also the CUDA path (CuPy + a GPU)

The op must read 8 bytes per pair (two float32), so the floor is bandwidth / 8 elements per second.
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


def main() -> None:
    args = parse_args(__doc__)
    n = 10**5 if args.quick else 10**8
    rng = np.random.default_rng(0)
    a = rng.random(n, dtype=np.float32)
    b = (a + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)
    bandwidth = cpu_read_bandwidth(10**7 if args.quick else 10**9)
    tables = []
    for name, cls, numpy_fn, tm_name in [
        ("MAE", gm.MeanAbsoluteError, lambda: np.mean(np.abs(a - b)), "mean_absolute_error"),
        ("MSE", gm.MeanSquaredError, lambda: np.mean(np.square(a - b)), "mean_squared_error"),
    ]:
        print(f"{name}, n={n:.0e}", flush=True)
        table = Table(f"{name}, {n:.0e} float32 pairs (CPU)", 8, bandwidth, baseline="numpy")

        def ours(cls=cls):
            metric = cls()
            metric.update_state(a, b)
            return metric.result()

        table.add("gpumetrics", n, median_seconds(ours, args.reps), ours())
        table.add("numpy", n, median_seconds(numpy_fn, args.reps), numpy_fn())
        if not args.skip_peers and have("torchmetrics"):
            import torch
            import torchmetrics.functional as tmf

            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            fn = getattr(tmf, tm_name)
            table.add("torchmetrics", n, median_seconds(lambda: fn(ta, tb), args.reps), fn(ta, tb))
        if not args.skip_peers and have("keras"):
            import keras

            def keras_call():
                metric = getattr(keras.metrics, cls.__name__)()
                metric.update_state(a, b)
                return keras.ops.convert_to_numpy(metric.result())

            table.add("keras", n, median_seconds(keras_call, max(1, args.reps // 2)), keras_call())
        tables.append(table)
        if args.gpu and cuda_available():
            import cupy

            ga, gb = cupy.asarray(a), cupy.asarray(b)
            metric = cls()
            gtable = Table(f"{name}, {n:.0e} float32 pairs (GPU)", 8, gpu_read_bandwidth(), baseline="cupy")
            gtable.add("gpumetrics", n, gpu_seconds(lambda: metric.update_state(ga, gb)), None)
            gtable.add("cupy", n, gpu_seconds(lambda: cupy.mean(cupy.abs(ga - gb))), None)
            tables.append(gtable)
    print()
    for table in tables:
        print(table.render(), end="\n\n")


if __name__ == "__main__":
    main()
