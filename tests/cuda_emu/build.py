"""Build CUDA C source with g++ and cuda_emu.h into a shared library, and launch its kernels on emulated arrays.

The part of CuPy's RawModule / RawKernel API the launchers use::

    mod = EmuModule(code=src, name_expressions=("f<float>", "g"), name="op.cu")   # like cupy.RawModule
    k = mod.get_function("f<float>")
    k((grid,), (block,), (x, np.int64(n), out), shared_mem=bytes)

Unlike CuPy, every argument is checked against the kernel's C++ parameter list (exported by a stub that the
builder appends) before anything runs:

- pointer: a device array (or None, CuPy's null) of the pointee's dtype; an unsigned pointee also takes any
  array of its size (raw words: the project reads labels that way), ``unsigned char`` takes bool, and
  ``gm_half``/``gm_bfloat16`` take 16-bit integer words; ``void*`` takes anything. A host numpy array, a
  wrong dtype, or a non-C-contiguous array whose (non-unit) element strides are not among the launch's
  integer arguments is an error;
- value: a numpy scalar of exactly the C type (``np.int64`` for ``long long``); a Python scalar or a device
  array (CuPy would pass its address) is an error.

After the launch, every allocation made through ``cuda_emu`` is checked for writes past its end.

``sanitize="address" | "thread"`` builds with ASan / TSan; the process must have been started with the
matching runtime preloaded (``sanitizer_env(kind)``, .ci/sanitize.sh does it).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np

from cuda_emu.device import EmuDeviceArray, check_canaries

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_emu.h"
CACHE = Path(os.environ.get("CUDA_EMU_CACHE", Path(tempfile.gettempdir()) / "gpumetrics_cuda_emu"))
CXX = os.environ.get("CXX", "g++")
DEFAULT_TIMEOUT_MS = int(os.environ.get("CUDA_EMU_TIMEOUT_MS", "30000"))

# `extern __shared__ [__align__(n)] T name[];` -> a pointer into the emulator's dynamic shared memory.
_EXTERN_SHARED = re.compile(r"\bextern\s+__shared__\s+((?:__align__\s*\(\s*\d+\s*\)\s*)?)([^;\[]*?)\b"
                            r"([A-Za-z_]\w*)\s*\[\s*\]\s*;")
_EXTERN_C_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+'
                              r'(?:__launch_bounds__\s*\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\(')

C_NAMES = {"i1": "signed char", "i2": "short", "i4": "int", "i8": "long long", "u1": "unsigned char",
           "u2": "unsigned short", "u4": "unsigned int", "u8": "unsigned long long", "f4": "float",
           "f8": "double", "b1": "bool"}
_DTYPES = {"i1": np.int8, "i2": np.int16, "i4": np.int32, "i8": np.int64, "u1": np.uint8, "u2": np.uint16,
           "u4": np.uint32, "u8": np.uint64, "f4": np.float32, "f8": np.float64, "b1": np.bool_}


class EmuCompileError(RuntimeError):
    """g++ rejected the kernel source (message: file:line: error ...)."""


class EmuLaunchError(RuntimeError):
    """A launch failed: bad configuration, deadlock, warp-collective misuse, __trap, C++ exception."""


class EmuWarning(UserWarning):
    """Undefined behaviour the emulation noticed but could continue from (divergent barrier, inactive lane)."""


def sanitizer_env(kind: str, base: dict | None = None) -> dict:
    """Environment for a process that will load modules built with ``sanitize=kind``."""
    lib = {"address": "libasan.so", "thread": "libtsan.so"}[kind]
    path = subprocess.run([CXX, f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
    preload = [os.path.realpath(path)]
    if kind == "address":
        # ASan intercepts __cxa_throw; libstdc++ must be loaded before it initialises, or the first C++ throw
        # hits "CHECK failed: real___cxa_throw != 0".
        preload.append(subprocess.run([CXX, "-print-file-name=libstdc++.so.6"], capture_output=True,
                                      text=True).stdout.strip())
    env = dict(os.environ if base is None else base, LD_PRELOAD=" ".join(preload), CUDA_EMU_SANITIZE=kind)
    if kind == "address":
        env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1:halt_on_error=1:verify_asan_link_order=0"
    else:
        env["TSAN_OPTIONS"] = "halt_on_error=1:abort_on_error=1:report_signal_unsafe=0:second_deadlock_stack=1"
        # The CPU reference path (Numba, torch) runs OpenMP worker threads whose futex-based synchronisation
        # TSan cannot see (false reports in libgomp); one thread each keeps the report about our kernels.
        env["NUMBA_NUM_THREADS"] = "1"
        env["OMP_NUM_THREADS"] = "1"
    return env


def _translate_options(options):
    """NVRTC options -> g++ options: -D/-U/-I pass through, device-only options have no CPU meaning."""
    out = []
    it = iter(options)
    for o in it:
        if o.startswith(("-D", "-U", "-I")):
            out.append(o if len(o) > 2 else o + next(it))
        elif o.startswith("--define-macro="):
            out.append("-D" + o.split("=", 1)[1])
    return out


def _rewrite_extern_shared(code: str) -> str:
    def repl(m: re.Match) -> str:
        ctype, name = m.group(2).strip(), m.group(3)
        return f"{ctype}* const {name} = reinterpret_cast<{ctype}*>(cuda_emu_dyn_smem_ptr());"
    return _EXTERN_SHARED.sub(repl, code)


def module_text(code: str, names, src_name: str = "kernel.cu") -> str:
    """The C++ translation unit for ``code``: rewritten dynamic shared memory plus one stub per kernel."""
    body = _rewrite_extern_shared(code)
    if not body.lstrip().startswith("#line"):
        body = f'#line 1 "{src_name}"\n' + body
    stubs = ['\n#line 1 "<cuda_emu launcher stubs>"']
    for i, n in enumerate(names):
        stubs.append(
            f'extern "C" int cuda_emu_launch_k{i}(const unsigned* g, const unsigned* b, size_t smem, '
            f"void** args, long timeout_ms, char* err, size_t errlen) "
            f"{{ return ::cuda_emu::launch_packed(&({n}), g, b, smem, args, timeout_ms, err, errlen); }}\n"
            f'extern "C" const char* cuda_emu_sig_k{i}() {{ return ::cuda_emu::signature(&({n})); }}')
    return body + "\n" + "\n".join(stubs) + "\n"


def compile_flags(sanitize: str | None, opt: str = "-O1", options=()) -> list[str]:
    # Emulator messages carry file:line from std::source_location; debug info is only needed for sanitizer
    # reports (and costs a third of the build time of a file with many template instantiations).
    flags = ["-std=c++20", opt, "-fPIC", "-shared", "-pthread", "-fno-strict-aliasing",
             "-include", str(HEADER), *_translate_options(options)]
    if sanitize:
        flags.append("-g")
    if sanitize == "address":
        flags += ["-fsanitize=address", "-fno-omit-frame-pointer"]
    elif sanitize == "thread":
        # GCC does not instrument volatile accesses unless asked (legacy warp-synchronous code uses them).
        flags += ["-fsanitize=thread", "--param=tsan-distinguish-volatile=1"]
    elif sanitize:
        raise ValueError(f"sanitize must be None, 'address' or 'thread' (got {sanitize!r})")
    return flags


def build_library(text: str, flags: list[str]) -> Path:
    """Compile ``text`` (cached on disk by a hash of every input byte); returns the .so path."""
    key = hashlib.sha256("\0".join([text, HEADER.read_text(), CXX, *flags]).encode()).hexdigest()[:24]
    CACHE.mkdir(parents=True, exist_ok=True)
    so = CACHE / f"mod_{key}.so"
    if so.exists():
        return so
    cpp = CACHE / f"mod_{key}.{os.getpid()}.cpp"
    tmp = CACHE / f"mod_{key}.{os.getpid()}.so"
    cpp.write_text(text)
    r = subprocess.run([CXX, *flags, "-x", "c++", str(cpp), "-o", str(tmp)], capture_output=True, text=True)
    if r.returncode != 0:
        raise EmuCompileError(r.stderr)
    os.replace(tmp, so)
    cpp.unlink(missing_ok=True)
    return so


class EmuModule:
    """One compiled kernel file (like ``cupy.RawModule``): kernels by name or name expression."""

    def __init__(self, code: str, name_expressions=(), *, name: str = "kernel.cu", options=(),
                 sanitize: str | None = "env", opt: str = "-O1", timeout_ms: int | None = None):
        if sanitize == "env":  # .ci/sanitize.sh sets CUDA_EMU_SANITIZE for the whole test process
            sanitize = os.environ.get("CUDA_EMU_SANITIZE") or None
        names = list(dict.fromkeys([*_EXTERN_C_KERNEL.findall(code), *name_expressions]))
        if not names:
            raise ValueError('no kernels: declare them extern "C" __global__ or pass name_expressions')
        self.names = names
        self.sanitize = sanitize
        self.timeout_ms = timeout_ms or DEFAULT_TIMEOUT_MS
        self.path = build_library(module_text(code, names, name), compile_flags(sanitize, opt, options))
        if sanitize and "LD_PRELOAD" not in os.environ:
            raise RuntimeError(f"sanitize={sanitize!r} needs its runtime preloaded: start the process with "
                               f"env=cuda_emu.sanitizer_env({sanitize!r}) (see .ci/sanitize.sh)")
        self._lib = ctypes.CDLL(str(self.path), mode=ctypes.RTLD_LOCAL)
        self._kernels: dict[str, EmuKernel] = {}

    def get_function(self, name: str) -> EmuKernel:
        kernel = self._kernels.get(name)
        if kernel is None:
            if name not in self.names:
                raise KeyError(f"{name!r} is not in this module (compiled: {self.names}); "
                               f"add it to the launcher's KERNELS")
            kernel = self._kernels[name] = EmuKernel(self, name, self.names.index(name))
        return kernel


def _code_of(dtype) -> str:
    dtype = np.dtype(dtype)
    return ("b" if dtype.kind == "b" else dtype.kind) + str(dtype.itemsize)


def _dim3(v, what: str):
    if isinstance(v, (int, np.integer)):
        v = (v,)
    v = tuple(v)
    if not 1 <= len(v) <= 3 or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v):
        raise TypeError(f"{what} must be an int or a tuple of 1-3 ints (got {v!r})")
    v = tuple(int(x) for x in v) + (1,) * (3 - len(v))
    if min(v) < 0:
        raise ValueError(f"{what} {v} has a negative extent")
    return (ctypes.c_uint * 3)(*v)


def _unwrap(a):
    """The host buffer behind an emulated device array, or None for anything else."""
    return a._a if isinstance(a, EmuDeviceArray) else None


class EmuKernel:
    """A compiled kernel, called like ``cupy.RawKernel``: ``k(grid, block, args, shared_mem=0)``."""

    max_dynamic_shared_size_bytes = 48 * 1024  # CUDA's default limit without opt-in

    def __init__(self, module: EmuModule, name: str, index: int):
        self.module, self.name = module, name
        self._launch = getattr(module._lib, f"cuda_emu_launch_k{index}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint), ctypes.c_size_t,
                                 ctypes.POINTER(ctypes.c_void_p), ctypes.c_long, ctypes.c_char_p, ctypes.c_size_t]
        sig = getattr(module._lib, f"cuda_emu_sig_k{index}")
        sig.restype = ctypes.c_char_p
        text = sig().decode()
        self.param_codes = text.split(",") if text else []
        self.last_warnings: list[str] = []
        self.on_launch = None  # callback(kernel, grid, block, shared_mem) set by the runtime (launch log)

    def _describe(self, code: str) -> str:
        if code.startswith("P:S"):
            return f"pointer to a {code[3:]}-byte struct"
        if code.startswith("P:"):
            return f"{C_NAMES.get(code[2:], 'void')}*"
        return C_NAMES.get(code, code)

    def _check_pointer(self, i, code, a, args):
        where = f"{self.name}: argument {i} ({self._describe(code)})"
        if a is None:
            return None  # CuPy passes None as a null pointer
        buf = _unwrap(a)
        if buf is None:
            if isinstance(a, np.ndarray):
                raise TypeError(f"{where}: got a host numpy array; import inputs with the runtime "
                                f"(as_array / runtime.import_array) and allocate with runtime.xp")
            raise TypeError(f"{where}: needs a device array, got {type(a).__name__}")
        want, got = code[2:], _code_of(buf.dtype)
        if want.startswith("S"):
            # 16-bit float tags (gm_half, gm_bfloat16) read raw 16-bit words; other structs are opaque tags.
            ok = want != "S2" or (buf.dtype.itemsize == 2 and buf.dtype.kind in "ui")
        elif want == "*" or got == want or (want == "u1" and got == "b1"):
            ok = True
        else:
            # Reading raw words through an unsigned type of the same size is the project's convention for
            # labels (any non-zero bit pattern is positive); anything else reinterprets values by mistake.
            ok = want[0] == "u" and buf.dtype.itemsize == int(want[1:])
        if not ok:
            raise TypeError(f"{where}: array dtype is {buf.dtype}; the kernel reads "
                            f"{_DTYPES[want].__name__ if want in _DTYPES else want} elements")
        if not buf.flags.c_contiguous and buf.size > 1:
            ints = {int(x) for x in args if isinstance(x, np.integer)}
            # Unit strides may be implicit in the kernel's indexing; every other stride must be an argument.
            needed = [s // buf.itemsize for s, n in zip(buf.strides, buf.shape) if n > 1 and s != buf.itemsize]
            missing = [s for s in needed if s not in ints]
            if missing or any(s % buf.itemsize for s in buf.strides):
                raise ValueError(f"{where}: array is not C-contiguous (shape {buf.shape}, element strides "
                                 f"{tuple(s // buf.itemsize for s in buf.strides)}) and the launch does not pass "
                                 f"its strides {missing}; the kernel would read it as if it were contiguous")
        return buf.ctypes.data

    def _check_value(self, i, code, a):
        where = f"{self.name}: argument {i} ({self._describe(code)})"
        if _unwrap(a) is not None:
            raise TypeError(f"{where}: got a device array; CuPy would pass its address, not its value")
        if not isinstance(a, np.generic):
            hint = f"np.{_DTYPES[code].__name__}(...)" if code in _DTYPES else "a numpy scalar"
            raise TypeError(f"{where}: pass {hint}, a numpy scalar of the exact C type, not {type(a).__name__}")
        got = _code_of(a.dtype)
        if got != code:
            raise TypeError(f"{where}: argument is np.{a.dtype} but the parameter is {C_NAMES.get(code, code)}; "
                            f"a GPU would reinterpret the {a.dtype.itemsize}-byte value")
        return np.array([a])

    def __call__(self, grid, block, args, *, shared_mem: int = 0, stream=None, timeout_ms: int | None = None):
        args = tuple(args)
        if len(args) != len(self.param_codes):
            raise TypeError(f"{self.name} takes {len(self.param_codes)} arguments "
                            f"({', '.join(self._describe(c) for c in self.param_codes)}), got {len(args)}")
        if not isinstance(shared_mem, (int, np.integer)) or shared_mem < 0:
            raise TypeError(f"{self.name}: shared_mem must be a non-negative int (got {shared_mem!r})")
        if shared_mem > self.max_dynamic_shared_size_bytes:
            raise EmuLaunchError(f"{self.name}: shared_mem={shared_mem} > max_dynamic_shared_size_bytes="
                                 f"{self.max_dynamic_shared_size_bytes} (a GPU needs the attribute raised)")
        g, b = _dim3(grid, "grid"), _dim3(block, "block")
        keep = []
        ptrs = (ctypes.c_void_p * max(1, len(args)))()
        for i, (code, a) in enumerate(zip(self.param_codes, args)):
            if code.startswith("P:"):
                holder = ctypes.c_void_p(self._check_pointer(i, code, a, args))  # None -> NULL
                keep.append(holder)
                ptrs[i] = ctypes.cast(ctypes.pointer(holder), ctypes.c_void_p)
            else:
                value = self._check_value(i, code, a)
                keep.append(value)
                ptrs[i] = value.ctypes.data
        if self.on_launch is not None:
            self.on_launch(self, tuple(g), tuple(b), int(shared_mem))
        err = ctypes.create_string_buffer(16384)
        rc = self._launch(g, b, int(shared_mem), ptrs, timeout_ms or self.module.timeout_ms, err, len(err))
        lines = err.value.decode(errors="replace").splitlines()
        self.last_warnings = [ln[len("warning: "):] for ln in lines if ln.startswith("warning: ")]
        for w in self.last_warnings:
            warnings.warn(f"{self.name}: {w}", EmuWarning, stacklevel=2)
        if rc != 0:
            raise EmuLaunchError(f"{self.name}: " + "\n".join(ln for ln in lines if not ln.startswith("warning: ")))
        overruns = check_canaries()
        if overruns:
            raise EmuLaunchError(f"{self.name}: out-of-bounds write to global memory: " + "; ".join(overruns))
