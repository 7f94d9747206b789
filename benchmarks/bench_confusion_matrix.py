"""Confusion matrix + mean IoU at segmentation scale: gpumetrics (confusion_matrix op, one fused pass) beside
numpy bincount, scikit-learn, torchmetrics (validate_args=False) and Keras MeanIoU, in one run.

    python benchmarks/bench_confusion_matrix.py            # 10^8 uint8 pixels (19 and 150 classes), 10^7 x 19 scores
    python benchmarks/bench_confusion_matrix.py --quick    # 10^5 pixels: checks the script runs (CI)

Workloads (CPU): uint8 labels and predictions, 5% of the labels = 255 (ignored), 80% of predictions right;
the op must read 2 B per pixel. The fused argmax reads (N, 19) float32 scores and uint8 labels: 77 B per
pixel. Peers too slow for the full size run on fewer pixels and are reported per element: scikit-learn
(10^7), Keras MeanIoU (10^4: its torch backend loops in Python per pixel). The floor is bytes / the best
multi-threaded read bandwidth of 10^9 bytes measured in the same run.

With CuPy and a GPU present, the CUDA path is also timed on 10^9 uint8 pixels (CUDA events) against the
device read bandwidth measured the same way.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import Table, cpu_read_bandwidth, cuda_available, gpu_read_bandwidth, gpu_seconds, have, \
    median_seconds, parse_args  # noqa: E402

from gpumetrics.metrics.iou import MeanIoU  # noqa: E402

IGNORE = 255


def segmentation(rng, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    t = rng.integers(0, classes, n, dtype=np.uint8)
    p = np.where(rng.random(n, dtype=np.float32) < 0.8, t, rng.integers(0, classes, n, dtype=np.uint8))
    t[rng.random(n, dtype=np.float32) < 0.05] = IGNORE
    return t, p.astype(np.uint8)


def miou_from_cm(cm: np.ndarray) -> float:
    """Keras' MeanIoU formula in float32 (for the peers' matrices)."""
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    den = (cm.sum(0) + cm.sum(1) - tp).astype(np.float32)
    valid = den > np.float32(1e-9)
    iou = np.where(valid, tp.astype(np.float32) / (den + np.float32(1e-7)), np.float32(0))
    return float(iou.sum() / (valid.sum(dtype=np.float32) + np.float32(1e-7)))


def gpumetrics_call(t, p, classes, sparse_y_pred=True):
    metric = MeanIoU(classes, ignore_class=IGNORE, sparse_y_pred=sparse_y_pred)

    def call():
        metric.reset_state()
        metric.update_state(t, p)
        return metric.result()

    return call


def numpy_call(t, p, classes, scores=None):
    def call():
        pred = p if scores is None else scores.argmax(axis=1).astype(np.uint8)
        keep = t != IGNORE
        index = t[keep].astype(np.int64) * classes + pred[keep]
        return miou_from_cm(np.bincount(index, minlength=classes * classes).reshape(classes, classes))

    return call


def sklearn_call(t, p, classes, scores=None):
    from sklearn.metrics import confusion_matrix

    def call():
        pred = p if scores is None else scores.argmax(axis=1)
        return miou_from_cm(confusion_matrix(t, pred, labels=list(range(classes))))  # 255 is not a label

    return call


def torchmetrics_call(t, p, classes, scores=None):
    import torch
    from torchmetrics.functional.classification import multiclass_jaccard_index

    target = torch.from_numpy(t)
    preds = torch.from_numpy(p if scores is None else scores)

    def call():
        return multiclass_jaccard_index(preds, target, classes, average="macro", ignore_index=IGNORE,
                                        validate_args=False)

    return call


def keras_call(t, p, classes, sparse_y_pred=True):
    import keras

    def call():
        metric = keras.metrics.MeanIoU(classes, ignore_class=IGNORE, sparse_y_pred=sparse_y_pred)
        metric.update_state(t, p)
        return keras.ops.convert_to_numpy(metric.result())

    return call


def run_workload(table: Table, args, t, p, classes, peer_sizes: dict, scores=None) -> None:
    n = t.size
    pred = p if scores is None else scores
    dense = scores is not None
    ours = gpumetrics_call(t, pred, classes, sparse_y_pred=not dense)
    table.add("gpumetrics MeanIoU", n, median_seconds(ours, args.reps), ours())
    table.add("numpy bincount", n, median_seconds(numpy_call(t, p, classes, scores), args.reps),
              numpy_call(t, p, classes, scores)())
    if args.skip_peers:
        return
    if have("torchmetrics"):
        m = peer_sizes["torchmetrics"]
        call = torchmetrics_call(t[:m], p[:m] if scores is None else None, classes,
                                 None if scores is None else scores[:m])
        table.add("torchmetrics (validate_args=False)", m, median_seconds(call, max(1, args.reps // 2)), call())
    if have("sklearn"):
        m = peer_sizes["sklearn"]
        call = sklearn_call(t[:m], p[:m], classes, None if scores is None else scores[:m])
        table.add("scikit-learn confusion_matrix", m, median_seconds(call, max(1, args.reps // 2)), call())
    if have("keras"):
        m = peer_sizes["keras"]
        call = keras_call(t[:m], pred[:m], classes, sparse_y_pred=not dense)
        table.add("keras MeanIoU", m, median_seconds(call, 1), call())


def goal_line(table: Table) -> str:
    ours = table.rate("gpumetrics MeanIoU")
    parts = []
    for peer in ("numpy bincount", "torchmetrics (validate_args=False)"):
        rate = table.rate(peer)
        if rate:
            parts.append(f"{ours / rate:.1f}x {peer}")
    return "gpumetrics = " + ", ".join(parts)


def gpu_tables(args) -> list[Table]:
    """The CUDA path on 10^9 uint8 pixels (10^6 with --quick), timed with CUDA events."""
    import cupy

    n = 10**6 if args.quick else 10**9
    rng = cupy.random.default_rng(0)
    bandwidth = gpu_read_bandwidth(4 * 10**7 if args.quick else 4 * 10**9)
    tables = []
    for classes in (19, 150):
        t = rng.integers(0, classes, n, dtype=cupy.int32).astype(cupy.uint8)
        p = cupy.where(rng.random(n, dtype=cupy.float32) < 0.8, t, (t + 1) % classes).astype(cupy.uint8)
        t[rng.random(n, dtype=cupy.float32) < 0.05] = IGNORE
        metric = MeanIoU(classes, ignore_class=IGNORE)
        table = Table(f"MeanIoU on the GPU, {n:.0e} uint8 pixels, {classes} classes (update, device time)", 2,
                      bandwidth, baseline=None)
        table.add("gpumetrics MeanIoU", n, gpu_seconds(lambda: metric.update_state(t, p), args.reps),
                  None)
        tables.append(table)
    return tables


def main() -> None:
    args = parse_args(__doc__)
    quick = args.quick
    n = 10**5 if quick else 10**8
    n_scores = 10**4 if quick else 10**7
    peers = {"torchmetrics": n, "sklearn": min(n, 10**7), "keras": min(n, 10**4)}
    peers_scores = {"torchmetrics": n_scores, "sklearn": min(n_scores, 10**6), "keras": min(n_scores, 10**3)}
    rng = np.random.default_rng(0)
    bandwidth = cpu_read_bandwidth(10**7 if quick else 10**9)
    print(f"read bandwidth: {bandwidth / 1e9:.1f} GB/s", flush=True)
    tables = []
    for classes in (19, 150):
        print(f"uint8 labels and predictions, {n:.0e} pixels, {classes} classes, {IGNORE} ignored", flush=True)
        t, p = segmentation(rng, n, classes)
        table = Table(f"MeanIoU(num_classes={classes}, ignore_class={IGNORE}), {n:.0e} uint8 pixels (CPU)", 2,
                      bandwidth, baseline="numpy bincount")
        run_workload(table, args, t, p, classes, peers)
        tables.append(table)
        del t, p
    print(f"fused argmax: (N, 19) float32 scores, N = {n_scores:.0e}, uint8 labels", flush=True)
    t, p = segmentation(rng, n_scores, 19)
    scores = rng.random((n_scores, 19), dtype=np.float32)
    scores[np.arange(n_scores), p] += 1.0  # argmax = p
    table = Table(f"MeanIoU(19, sparse_y_pred=False), {n_scores:.0e} x 19 float32 scores + uint8 labels (CPU)",
                  19 * 4 + 1, bandwidth, baseline="numpy bincount")
    run_workload(table, args, t, p, 19, peers_scores, scores=scores)
    tables.append(table)
    del t, p, scores
    if cuda_available():
        tables.extend(gpu_tables(args))
    print()
    for table in tables:
        print(table.render())
        if table.baseline:
            print("\n" + goal_line(table))
        print()


if __name__ == "__main__":
    main()
