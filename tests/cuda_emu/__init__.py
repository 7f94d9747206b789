"""gpumetrics' CPU emulation of CUDA: runs kernels/*.cu unchanged through the real launchers, in CI, without a GPU.

Layers (see each module):

- ``cuda_emu.h``   the CUDA execution model in C++ (threads of a block run concurrently with real barriers,
                   warp collectives as per-warp rendezvous, atomics, poisoned shared memory)
- ``build.py``     g++ build of a kernel file plus launcher stubs (cached by content hash), argument checks
- ``device.py``    emulated device arrays (CuPy-like) and the no-host-sync guard
- ``runtime.py``   :class:`EmuRuntime`, the runtime protocol of gpumetrics/_cuda/_runtime.py
- ``nvrtc.py``     the NVRTC compile check (every op, every template instantiation, every architecture)
- ``gpu_guard.py`` pytest plugin for a real GPU: no host synchronisation inside update_state (.ci/gpu.sh)

Typical use is through tests/conftest.py (``backend`` fixture, param ``emu``)::

    runtime = EmuRuntime(multiprocessor_count=2)
    previous = gpumetrics._cuda._runtime.set_runtime(runtime)
"""
from __future__ import annotations

import contextlib
import functools

from cuda_emu.build import (EmuCompileError, EmuKernel, EmuLaunchError, EmuModule, EmuWarning,
                            sanitizer_env)
from cuda_emu.device import (EmuDeviceArray, HostSyncError, allow_host_sync, host_sync_forbidden, no_host_sync,
                             to_device, xp)
from cuda_emu.runtime import EmuRuntime, Launch, build_op

__all__ = [
    "EmuCompileError", "EmuDeviceArray", "EmuKernel", "EmuLaunchError", "EmuModule", "EmuRuntime", "EmuWarning",
    "HostSyncError", "Launch", "allow_host_sync", "build_op", "guard_metric_updates", "host_sync_forbidden",
    "no_host_sync", "sanitizer_env", "to_device", "xp",
]


def _subclasses(cls) -> list:
    out, todo = [], [cls]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


def guard_metric_updates(monkeypatch, guard=no_host_sync) -> None:
    """Run every ``Metric.update_state`` (and ``Metric._batch``) inside ``guard()``, undone by ``monkeypatch``.

    With the default guard, any host read of an emulated device array inside an update raises
    :class:`HostSyncError`. Metric classes defined later (while the patch is active) are covered through
    ``__init_subclass__``; ``_batch`` covers every built-in metric whatever its ``update_state`` does.
    ``guard`` may be any context-manager factory taking a scope name (on a GPU: ``cupyx.allow_synchronize``).
    """
    from gpumetrics.metrics.base import Metric  # noqa: PLC0415

    def wrap(cls, fn):
        @functools.wraps(fn)
        def update_state(self, *args, **kwargs):
            with guard(f"{type(self).__name__}.update_state"):
                return fn(self, *args, **kwargs)

        update_state.__cuda_emu_guarded__ = True
        return update_state

    def patch(cls, setter):
        fn = cls.__dict__.get("update_state")
        if fn is not None and not getattr(fn, "__cuda_emu_guarded__", False):
            setter(cls, "update_state", wrap(cls, fn))

    for cls in _subclasses(Metric):
        patch(cls, monkeypatch.setattr)

    original_init_subclass = Metric.__dict__.get("__init_subclass__")

    def init_subclass(cls, **kwargs):
        if original_init_subclass is not None:
            original_init_subclass.__func__(cls, **kwargs)
        else:
            super(Metric, cls).__init_subclass__(**kwargs)
        patch(cls, setattr)  # a class born during the test keeps the (harmless) wrapper

    monkeypatch.setattr(Metric, "__init_subclass__", classmethod(init_subclass))

    batch = Metric._batch

    @contextlib.contextmanager
    def guarded_batch(self, device, inputs=()):
        with guard(f"{type(self).__name__}._batch"), batch(self, device, inputs) as parts:
            yield parts

    monkeypatch.setattr(Metric, "_batch", guarded_batch)
