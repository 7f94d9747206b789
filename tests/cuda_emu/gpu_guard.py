"""pytest plugin for a real GPU: every ``Metric.update_state`` on cupy / CUDA torch inputs runs with host
synchronisation forbidden, as the emulated runtime forbids host reads in CI.

Loaded by .ci/gpu.sh with ``-p cuda_emu.gpu_guard``. Inside an update, ``cupyx.allow_synchronize(False)``
makes CuPy raise on any device-to-host copy or stream synchronisation, and torch's sync debug mode is
"error" (torch raises on ``.item()``, ``nonzero()`` and other synchronising calls on CUDA tensors). The
number of guarded updates is written to ``$OUT/sync_guard.txt`` (or ./gpu_out) at the end of the session.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

_counts = {"guarded_updates": 0, "tests": 0}


@contextlib.contextmanager
def gpu_no_sync(scope: str = "update_state"):
    import cupyx  # noqa: PLC0415  (only on a machine with a GPU)

    torch = None
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        pass
    previous = torch.cuda.get_sync_debug_mode() if torch is not None and torch.cuda.is_available() else None
    if previous is not None:
        torch.cuda.set_sync_debug_mode("error")
    _counts["guarded_updates"] += 1
    try:
        with cupyx.allow_synchronize(False):
            yield
    finally:
        if previous is not None:
            torch.cuda.set_sync_debug_mode(previous)


@pytest.fixture(autouse=True)
def _no_sync_in_gpu_updates(request, monkeypatch):
    if "backend" not in request.fixturenames:
        yield
        return
    backend = request.getfixturevalue("backend")
    if getattr(backend, "name", None) in ("cupy", "torch_cuda"):
        from cuda_emu import guard_metric_updates  # noqa: PLC0415

        guard_metric_updates(monkeypatch, guard=gpu_no_sync)
        _counts["tests"] += 1
    yield


def pytest_sessionfinish(session, exitstatus):
    out = Path(os.environ.get("OUT") or "gpu_out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sync_guard.txt").write_text(
            f"{_counts['tests']} GPU tests ran with host synchronisation forbidden inside update_state; "
            f"{_counts['guarded_updates']} guarded update calls (a synchronisation fails its test)\n")
    except OSError:
        pass
