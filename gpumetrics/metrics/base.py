"""The Metric base class: Keras' stateful API, state on the device of the data, checked commits.

Built-in metrics declare their state with :meth:`Metric.add_state` and run each batch through
:meth:`Metric._batch`, which hands the ops a scratch copy of the state and commits it only if the batch held
no invalid value. User metrics written in the Keras style (``__init__`` with ``add_variable``,
``update_state``, ``result``) work too: their :class:`Variable` objects are materialised on the device of the
first update.

Not thread-safe: one metric instance must not be updated from two threads at once.
"""
from __future__ import annotations

import contextlib
import re
import threading
from collections import defaultdict

import numpy as np

from gpumetrics import _dispatch
from gpumetrics._dispatch import CPU, Device
from gpumetrics._state import FLOAT, INT, InvalidInputError, StateSpec, StateStore, array_module, host_zeros

STATE_DICT_VERSION = 1

_name_counts: dict[str, int] = defaultdict(int)
_name_lock = threading.Lock()


def to_snake_case(name: str) -> str:
    """Keras' rule: ``MeanIoU`` -> ``mean_io_u``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique_name(prefix: str) -> str:
    with _name_lock:
        count = _name_counts[prefix]
        _name_counts[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def _resolve_dtype(dtype) -> str:
    if dtype is None:
        return "float32"
    name = str(getattr(dtype, "name", dtype))
    if name not in ("float16", "bfloat16", "float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64' (got {dtype!r})")
    return name


class Metric:
    """Base class of every metric (Keras 3 ``keras.metrics.Metric`` API).

    Parameters
    ----------
    name : str, optional
        Defaults to the class name in snake case, made unique (``precision``, ``precision_1``, ...).
    dtype : {"float32", "float64"}, optional
        Compute dtype of ``result()``. State is always exact (int64 counts, float64 sums).

    Subclass it the Keras way::

        class BinaryTruePositives(gm.Metric):
            def __init__(self, name="binary_true_positives", **kwargs):
                super().__init__(name=name, **kwargs)
                self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")

            def update_state(self, y_true, y_pred, sample_weight=None):
                xp = gm.xp(y_pred)
                hits = xp.logical_and(xp.asarray(y_true) != 0, xp.asarray(y_pred) > 0.5)
                self.true_positives.assign_add(hits.sum())

            def result(self):
                return self.true_positives.value
    """

    _direction: str | None = None

    def __init__(self, name: str | None = None, dtype=None):
        self.name = name if name is not None else _unique_name(to_snake_case(type(self).__name__))
        self._dtype = self._resolve_dtype(dtype)
        self._specs: list[StateSpec] = []
        self._store: StateStore | None = None
        self._variables: list[Variable] = []

    # ---------------------------------------------------------------- configuration
    def _resolve_dtype(self, dtype) -> str:
        return _resolve_dtype(dtype)

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def _compute_dtype(self):
        return np.float64 if self._dtype == "float64" else np.float32

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self._dtype}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        config = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        device = self.device if self.device is not None else "not built"
        return f"{type(self).__name__}({config}) on {device}"

    # ---------------------------------------------------------------- state declaration
    def add_state(self, name: str, shape=(), dtype=FLOAT, merge: str = "sum") -> None:
        """Declare one piece of built-in state (int64 counts or float64 sums)."""
        if not hasattr(self, "_specs"):
            raise RuntimeError("call super().__init__() before declaring state")
        dtype = np.dtype(dtype)
        if dtype not in (INT, FLOAT):
            raise ValueError("state dtype must be int64 or float64")
        if merge != "sum":
            raise ValueError(f"unknown merge rule {merge!r}")
        self._specs.append(StateSpec(name, tuple(int(s) for s in np.atleast_1d(shape)) if shape != () else (),
                                     dtype, merge))
        self._store = None

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum", name=None) -> Variable:
        """A user state variable (Keras API). ``dtype=None`` means float64 (Keras: float32)."""
        if not hasattr(self, "_variables"):
            raise RuntimeError("call super().__init__() before add_variable()")
        var = Variable(shape, initializer, dtype, aggregation, name or f"variable_{len(self._variables)}")
        self._variables.append(var)
        return var

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None, aggregation="sum") -> Variable:
        """Keras' backward-compatible alias of :meth:`add_variable`; ``initializer`` is required."""
        if initializer is None:
            raise ValueError("add_weight() needs an initializer")
        return self.add_variable(shape, initializer, dtype, aggregation, name)

    @property
    def variables(self) -> list:
        return list(self._variables)

    # Subclasses list the reasons a batch can be rejected, in the order of their ops' invalid counters.
    _invalid_reasons: tuple[str, ...] = ()

    # ---------------------------------------------------------------- device and state
    @property
    def device(self) -> Device | None:
        """Device the state lives on (``None`` before the first update)."""
        if self._store is not None:
            return self._store.device
        built = [v.device for v in self._variables if v.device is not None]
        return built[0] if built else None

    def _state_on(self, device: Device) -> StateStore:
        store = self._store
        if store is None:
            if device.kind == "cuda":
                with _use_device(device):
                    store = StateStore(self._specs, device, len(self._invalid_reasons))
            else:
                store = StateStore(self._specs, device, len(self._invalid_reasons))
            self._store = store
        elif store.device != device:
            raise ValueError(f"{self.name}: state is on {store.device} but this batch is on {device}; "
                             f"update a metric with data from one device (or reset_state() first)")
        return store

    def _device_for(self, **inputs) -> Device:
        """Device of this batch, checked against the state's (``ValueError`` naming both)."""
        device = _dispatch.common_device(**inputs)
        if self._store is not None and all(_dispatch.device_of(x) is None for x in inputs.values()):
            return self._store.device  # scalars and lists join the state's device
        if self._store is not None and self._store.device != device:
            raise ValueError(f"{self.name}: state is on {self._store.device} but this batch is on {device}")
        return device

    @contextlib.contextmanager
    def _batch(self, device: Device, inputs=()):
        """Accumulate one batch: yields ``(scratch views, invalid counters, xp)``, then commits.

        The ops add the batch into the scratch and count invalid values; the commit adds the scratch to
        the state only if no counter is set. On the CPU an invalid batch raises here; on the GPU it is
        recorded on the device and raised by ``result()``.
        """
        store = self._state_on(device)
        ctx = _use_device(device) if device.kind == "cuda" else contextlib.nullcontext()
        stream = _use_stream_of(device, inputs)
        with ctx, stream:
            scratch = store.scratch()
            invalid = store.xp.zeros(max(len(self._invalid_reasons), 1), dtype=np.uint64)
            yield store.views(scratch), invalid, store.xp
            commit = _dispatch.op(device, "state_commit")
            commit(store.buffers[INT], scratch[INT], store.buffers[FLOAT], scratch[FLOAT], invalid,
                   store.rejected)
        if device.kind == "cpu" and invalid.any():
            store.rejected.fill(0)  # the CPU raises now instead of keeping a sticky flag
            raise InvalidInputError(self._describe_invalid(invalid))

    def _describe_invalid(self, counts) -> str:
        parts = [f"{int(n)} {reason}" for n, reason in zip(counts, self._invalid_reasons) if n]
        return f"{self.name}: invalid input, the batch was not counted: " + "; ".join(parts)

    def _check_rejected(self, store: StateStore) -> None:
        if store.device.kind == "cuda":
            rejected = _to_host(store.rejected)
            if rejected.any():
                raise InvalidInputError(self._describe_invalid(rejected) +
                                        " (found on the GPU; call reset_state() to clear)")

    def _state(self) -> tuple[dict, object]:
        """(state views, array module) for result(): the real state, or zeros before any update."""
        if self._store is None:
            return host_zeros(self._specs), np
        self._check_rejected(self._store)
        return self._store.views(), self._store.xp

    # ---------------------------------------------------------------- Keras API
    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        """The metric value from everything seen since the last reset (synchronises with the GPU)."""
        state, xp = self._state()
        if self._store is not None and self._store.device.kind == "cuda":
            with _use_device(self._store.device):
                return self._compute(state, xp)
        return self._compute(state, xp)

    def _compute(self, state: dict, xp):
        raise NotImplementedError

    def reset_state(self) -> None:
        """Forget everything seen; the state stays on its device."""
        if self._store is not None:
            if self._store.device.kind == "cuda":
                with _use_device(self._store.device):
                    self._store.reset()
            else:
                self._store.reset()
        for var in self._variables:
            var._reset()

    def __call__(self, *args, **kwargs):
        """``update_state(*args, **kwargs)`` then the cumulative ``result()`` (synchronises)."""
        if not hasattr(self, "_specs"):
            raise RuntimeError("call super().__init__() in your metric's __init__")
        self.update_state(*args, **kwargs)
        return self.result()

    # ---------------------------------------------------------------- beyond Keras: merge, export
    def merge_state(self, *others: Metric) -> Metric:
        """Add the state of ``others`` (same class and config) as if this metric had seen their data."""
        for other in others:
            if type(other) is not type(self):
                raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
            mine, theirs = _config_key(self), _config_key(other)
            if mine != theirs:
                raise ValueError(f"cannot merge metrics with different configurations: {theirs} vs {mine}")
            if other._store is not None:
                other._check_rejected(other._store)
                if [s.shape for s in other._specs] != [s.shape for s in self._specs]:
                    self._specs = list(other._specs)
                    self._store = None
                store = self._state_on(self.device or other._store.device)
                for dt, buf in other._store.buffers.items():
                    store.buffers[dt] += _move(buf, store.device)
            for mine_var, their_var in zip(self._variables, other._variables):
                mine_var._merge(their_var)
        return self

    def state_dict(self) -> dict:
        """Host copy of the state, with config and version: for checkpoints and cross-process merges."""
        state = {}
        if self._store is not None:
            self._check_rejected(self._store)
            state = {name: _to_host(v) for name, v in self._store.views().items()}
        variables = {v.name: v.numpy() for v in self._variables}
        return {"version": STATE_DICT_VERSION, "class": type(self).__name__, "config": self.get_config(),
                "state": state, "variables": variables}

    def load_state_dict(self, state_dict: dict) -> None:
        """Replace the state with an exported one (kept on the current device, or the CPU if unbuilt)."""
        if state_dict.get("version") != STATE_DICT_VERSION:
            raise ValueError(f"unsupported state_dict version {state_dict.get('version')!r}")
        if state_dict.get("class") != type(self).__name__:
            raise ValueError(f"state_dict is for {state_dict.get('class')}, not {type(self).__name__}")
        saved = state_dict["state"]
        if saved:
            specs = {s.name: s for s in self._specs}
            if set(saved) != set(specs) or any(np.shape(saved[n]) != specs[n].shape for n in saved):
                self._specs = [StateSpec(n, tuple(np.shape(a)), np.dtype(a.dtype)) for n, a in saved.items()]
                self._store = None
            store = self._state_on(self.device or CPU)
            store.reset()
            for name, view in store.views().items():
                view[...] = _move(np.asarray(saved[name]), store.device)
        else:
            self.reset_state()
        for var in self._variables:
            if var.name in state_dict.get("variables", {}):
                var.assign(state_dict["variables"][var.name])

    def __getstate__(self):
        exported = self.state_dict()
        attrs = {k: v for k, v in self.__dict__.items() if k not in ("_store", "_variables")}
        device = self._store.device if self._store is not None else None
        return {"attrs": attrs, "exported": exported, "variables": self._variables, "device": device}

    def __setstate__(self, saved):
        self.__dict__.update(saved["attrs"])
        self._store = None
        self._variables = saved["variables"]
        device = saved.get("device")
        if device is not None and device.kind == "cuda" and saved["exported"]["state"]:
            try:  # back on the GPU it came from, when this process has one; else on the CPU
                self._state_on(device)
            except ImportError:
                pass
        self.load_state_dict(saved["exported"])


class Variable:
    """A user metric's state variable (Keras ``add_variable``): ``assign``, ``assign_add``, ``value``, ``numpy()``.

    Materialised on the device of the first value assigned to it; until then it reads as its initial value.
    """

    def __init__(self, shape, initializer, dtype, aggregation, name):
        self.shape = tuple(np.atleast_1d(shape)) if shape != () else ()
        self.dtype = np.dtype(dtype) if dtype is not None else FLOAT
        self.initializer = initializer
        self.aggregation = aggregation
        self.name = name
        self._value = None

    @property
    def device(self) -> Device | None:
        return None if self._value is None else (CPU if isinstance(self._value, np.ndarray) else
                                                 Device("cuda", int(self._value.device.id)))

    def _initial(self, xp):
        if callable(self.initializer):
            return xp.asarray(self.initializer(self.shape, self.dtype), dtype=self.dtype)
        fill = {"zeros": 0, "ones": 1}.get(self.initializer)
        if fill is None:
            raise ValueError(f"unknown initializer {self.initializer!r} (use 'zeros', 'ones' or a callable)")
        return xp.full(self.shape, fill, dtype=self.dtype)

    def _materialize(self, like) -> None:
        if self._value is None:
            device = _dispatch.device_of(like) or CPU
            self._value = self._initial(array_module(device))

    @property
    def value(self):
        if self._value is None:
            return self._initial(np)
        return self._value

    def assign(self, value) -> None:
        self._materialize(value)
        xp = array_module(self.device)
        self._value[...] = xp.asarray(value, dtype=self.dtype)

    def assign_add(self, value) -> None:
        self._materialize(value)
        xp = array_module(self.device)
        self._value += xp.asarray(value, dtype=self.dtype)

    def assign_sub(self, value) -> None:
        self._materialize(value)
        xp = array_module(self.device)
        self._value -= xp.asarray(value, dtype=self.dtype)

    def numpy(self) -> np.ndarray:
        value = self.value
        return value if isinstance(value, np.ndarray) else _to_host(value)

    def _reset(self) -> None:
        if self._value is not None:
            self._value.fill(0)  # Keras resets every variable to zeros, whatever its initializer

    def _merge(self, other: Variable) -> None:
        if other._value is None:
            return
        if self.aggregation != "sum":
            raise ValueError(f"cannot merge variable {self.name!r} with aggregation {self.aggregation!r}")
        self.assign_add(other._value if self._value is None else _move(other._value, self.device))

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.numpy(), dtype=dtype)


def _config_key(metric: Metric) -> dict:
    return {k: v for k, v in metric.get_config().items() if k != "name"}


def _use_device(device: Device):
    from gpumetrics._cuda._runtime import get_runtime  # noqa: PLC0415

    return get_runtime().use_device(device)


def _use_stream_of(device: Device, inputs):
    if device.kind == "cpu":
        return contextlib.nullcontext()
    from gpumetrics._cuda._runtime import get_runtime  # noqa: PLC0415

    return get_runtime().use_stream_of(inputs)


def _to_host(array) -> np.ndarray:
    if isinstance(array, np.ndarray):
        return array
    from gpumetrics._cuda._runtime import get_runtime  # noqa: PLC0415

    return get_runtime().to_host(array)


def _move(array, device: Device):
    """``array`` on ``device`` (a copy across devices; used only for small state)."""
    if device.kind == "cpu":
        return _to_host(array)
    return array_module(device).asarray(array)
