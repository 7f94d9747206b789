"""``gpumetrics demo``: every metric on a built-in synthetic validation set, on whatever device is present.

    gpumetrics demo                 # GPU if CuPy sees one, else CPU; prints values and elements per second
    gpumetrics demo --device cpu --scale 0.1
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import gpumetrics as gm

BATCHES = 8


def _synthetic(scale: float, seed: int = 0) -> dict:
    """A validation set of four tasks, as numpy batches: regression, multiclass, binary, segmentation."""
    rng = np.random.default_rng(seed)
    n_reg, n_cls, n_bin, n_px = (max(1, int(x * scale)) for x in (2_000_000, 200_000, 2_000_000, 4_000_000))
    data = {"regression": [], "multiclass": [], "binary": [], "segmentation": []}
    for _ in range(BATCHES):
        target = rng.random((n_reg // 10, 10), dtype=np.float32)
        data["regression"].append((target, target + 0.1 * rng.standard_normal(target.shape, dtype=np.float32)))
        labels = rng.integers(0, 10, n_cls)
        logits = rng.standard_normal((n_cls, 10), dtype=np.float32)
        logits[np.arange(n_cls), labels] += 1.5
        data["multiclass"].append((labels.astype(np.int32), logits))
        y = (rng.random(n_bin) < 0.3).astype(np.uint8)
        scores = 1 / (1 + np.exp(-(rng.standard_normal(n_bin, dtype=np.float32) + 1.2 * y)))
        data["binary"].append((y, scores.astype(np.float32)))
        truth = rng.integers(0, 19, n_px).astype(np.uint8)
        pred = np.where(rng.random(n_px) < 0.8, truth, rng.integers(0, 19, n_px)).astype(np.uint8)
        data["segmentation"].append((truth, pred))
    return data


def _metrics() -> list[tuple[str, str, object]]:
    """(task, label, metric) for every metric the demo runs."""
    entries = [
        ("regression", "MeanAbsoluteError", gm.MeanAbsoluteError()),
        ("regression", "MeanSquaredError", gm.MeanSquaredError()),
        ("regression", "RootMeanSquaredError", gm.RootMeanSquaredError()),
        ("multiclass", "SparseCategoricalAccuracy", gm.SparseCategoricalAccuracy()),
        ("multiclass", "SparseTopKCategoricalAccuracy(k=3)", gm.SparseTopKCategoricalAccuracy(k=3)),
    ]
    optional = [
        ("binary", "AUC(num_thresholds=200)", "AUC", {}),
        ("binary", "Precision", "Precision", {}),
        ("binary", "Recall", "Recall", {}),
        ("segmentation", "MeanIoU(19)", "MeanIoU", {"num_classes": 19}),
    ]
    for task, label, name, kwargs in optional:
        if hasattr(gm, name):
            entries.append((task, label, getattr(gm, name)(**kwargs)))
    return entries


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        import cupy

        return "cuda" if cupy.cuda.runtime.getDeviceCount() > 0 else "cpu"
    except Exception:
        return "cpu"


def demo(device: str, scale: float) -> int:
    device = _device(device)
    print(f"gpumetrics {gm.__version__} demo on {device}: {BATCHES} batches per task, scale {scale}")
    data = _synthetic(scale)
    if device == "cuda":
        import cupy

        data = {task: [tuple(cupy.asarray(x) for x in batch) for batch in batches] for task, batches in data.items()}
        sync = cupy.cuda.Stream.null.synchronize
    else:
        sync = lambda: None  # noqa: E731
    print(f"{'metric':<38} {'value':>12} {'Melem/s':>10}")
    for task, label, metric in _metrics():
        batches = data[task]
        metric.update_state(*batches[0])  # warm-up: compiles kernels on first use (cached on disk)
        metric.reset_state()
        sync()
        start = time.perf_counter()
        for batch in batches:
            metric.update_state(*batch)
        value = metric.result()
        sync()
        seconds = time.perf_counter() - start
        elements = sum(int(np.prod(batch[-1].shape)) for batch in batches)
        shown = np.asarray(value.get() if hasattr(value, "get") else value)
        text = f"{float(shown):.6f}" if shown.ndim == 0 else np.array2string(shown, precision=4)
        print(f"{label:<38} {text:>12} {elements / seconds / 1e6:>10,.1f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gpumetrics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="compute every metric on a synthetic validation set")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    run.add_argument("--scale", type=float, default=1.0, help="data size relative to the default")
    args = parser.parse_args(argv)
    return demo(args.device, args.scale)


if __name__ == "__main__":
    sys.exit(main())
