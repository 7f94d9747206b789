"""The NVRTC compile check: every op, every template instantiation of its launcher, every supported architecture.

Uses the NVRTC shared library from the PyPI wheels (``nvidia-cuda-nvrtc-cu12`` -> libnvrtc.so.12,
``nvidia-cuda-nvrtc`` -> libnvrtc.so.13) through ctypes: no GPU, no driver, no CuPy. The source, the name
expressions and the options are exactly what CuPy's ``RawModule`` gets at run time
(``gpumetrics._cuda._loader``), plus ``-arch=sm_XX`` and ``-Xptxas -v`` for the resource report.

A kernel fails the check on a compile error, on any warning (NVRTC or ptxas), or on a register spill.
Used by tests/test_kernels_compile.py and by the CLI .ci/nvrtc_check.py.
"""
from __future__ import annotations

import ctypes
import glob
import os
import re
import sys
import sysconfig
from dataclasses import dataclass, field

# The architectures the project supports (CuPy compiles for the device's own arch at run time).
ARCHS = ("75", "80", "86", "89", "90")


class NvrtcError(RuntimeError):
    pass


def library_paths() -> list[str]:
    """One libnvrtc per major version found (wheels first, then the system), newest first."""
    found: dict[str, str] = {}
    env = os.environ.get("NVRTC_LIBRARY")
    candidates = [env] if env else []
    roots = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *sys.path])
    for root in roots:
        if root and os.path.isdir(os.path.join(root, "nvidia")):
            candidates += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", "libnvrtc.so.*")))
    candidates += sorted(glob.glob("/usr/local/cuda*/lib64/libnvrtc.so.*"))
    for path in candidates:
        m = re.search(r"libnvrtc\.so\.(\d+)$", path)
        if m and m.group(1) not in found and os.path.exists(path):
            found[m.group(1)] = path
    return [found[k] for k in sorted(found, key=int, reverse=True)]


_RES = {
    "entry": re.compile(r"Compiling entry function '([^']+)' for '(\w+)'"),
    "frame": re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads"),
    "regs": re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?"),
}
_WARNING = re.compile(r"\bwarning\b", re.IGNORECASE)


def parse_ptxas(log: str) -> dict:
    """``-Xptxas -v`` report -> {mangled kernel name: {registers, barriers, smem, stack, spill_stores, ...}}."""
    out, cur = {}, None
    for line in log.splitlines():
        if m := _RES["entry"].search(line):
            cur = out.setdefault(m.group(1), {"registers": 0, "barriers": 0, "smem": 0, "stack": 0,
                                              "spill_stores": 0, "spill_loads": 0})
        elif cur is not None and (m := _RES["frame"].search(line)):
            cur.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        elif cur is not None and (m := _RES["regs"].search(line)):
            cur.update(registers=int(m.group(1)), barriers=int(m.group(2) or 0), smem=int(m.group(3) or 0))
    return out


def warnings_in(log: str) -> list[str]:
    """Lines of an NVRTC/ptxas log that are warnings (file(line): warning ..., ptxas warning ...)."""
    return [ln for ln in log.splitlines() if _WARNING.search(ln) and "ptxas info" not in ln]


@dataclass
class CompileResult:
    arch: str
    log: str
    resources: dict = field(default_factory=dict)   # name expression -> ptxas figures
    warnings: list = field(default_factory=list)
    cubin_size: int = 0


class Nvrtc:
    """One libnvrtc (ctypes; RTLD_LOCAL, so NVRTC 12 and 13 can be loaded side by side)."""

    def __init__(self, path: str):
        self.path = path
        self.lib = lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        lib.nvrtcGetErrorString.argtypes = [ctypes.c_int]
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._ok(lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)))
        self.version = (major.value, minor.value)

    def __repr__(self):
        return f"NVRTC {self.version[0]}.{self.version[1]}"

    def _ok(self, status: int) -> None:
        if status != 0:
            raise NvrtcError(self.lib.nvrtcGetErrorString(status).decode())

    def supported_archs(self) -> list[str]:
        n = ctypes.c_int()
        self._ok(self.lib.nvrtcGetNumSupportedArchs(ctypes.byref(n)))
        arr = (ctypes.c_int * n.value)()
        self._ok(self.lib.nvrtcGetSupportedArchs(arr))
        return [str(a) for a in arr]

    def compile(self, source: str, arch: str, options=(), name: str = "kernel.cu",
                name_expressions=()) -> CompileResult:
        """Compile to a cubin for sm_<arch>; ``NvrtcError`` (message: the log, file(line): error ...) on failure."""
        lib = self.lib
        prog = ctypes.c_void_p()
        self._ok(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None))
        try:
            for ne in name_expressions:
                self._ok(lib.nvrtcAddNameExpression(prog, ne.encode()))
            opts = [f"-arch=sm_{arch}", *options, "-Xptxas", "-v"]
            c_opts = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
            status = lib.nvrtcCompileProgram(prog, len(opts), c_opts)
            size = ctypes.c_size_t()
            self._ok(lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)))
            buf = ctypes.create_string_buffer(size.value)
            self._ok(lib.nvrtcGetProgramLog(prog, buf))
            log = buf.value.decode(errors="replace")
            if status != 0:
                raise NvrtcError(f"{self!r} sm_{arch}: compile failed\n{log}")
            lowered = {}
            for ne in name_expressions:
                p = ctypes.c_char_p()
                self._ok(lib.nvrtcGetLoweredName(prog, ne.encode(), ctypes.byref(p)))
                lowered[p.value.decode()] = ne
            self._ok(lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)))
            resources = {lowered.get(k, k): v for k, v in parse_ptxas(log).items()}
            return CompileResult(arch, log, resources, warnings_in(log), size.value)
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


_loaded: dict[str, Nvrtc] = {}


def compilers() -> list[Nvrtc]:
    """Every NVRTC major version installed (12 and 13 in CI)."""
    for path in library_paths():
        if path not in _loaded:
            try:
                _loaded[path] = Nvrtc(path)
            except OSError:
                continue
    return list(_loaded.values())


@dataclass
class OpCheck:
    op: str
    compiler: str
    arch: str
    error: str | None = None
    warnings: list = field(default_factory=list)
    resources: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)  # registered names with no entry in the ptxas report

    @property
    def spills(self) -> list[str]:
        return [k for k, r in self.resources.items() if r["spill_stores"] or r["spill_loads"]]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.warnings and not self.spills and not self.missing

    def problems(self) -> list[str]:
        out = []
        if self.error:
            out.append(self.error)
        out += [f"{self.op}.cu: {self.compiler} sm_{self.arch}: {w}" for w in self.warnings]
        out += [f"{self.op}.cu: {self.compiler} sm_{self.arch}: kernel {k} spills registers "
                f"({self.resources[k]['spill_stores']} bytes stored, {self.resources[k]['spill_loads']} loaded)"
                for k in self.spills]
        out += [f"{self.op}.cu: {self.compiler} sm_{self.arch}: {k} in KERNELS was not compiled" for k in self.missing]
        return out


def check_op(op: str, arch: str, compiler: Nvrtc, source: str | None = None) -> OpCheck:
    """Compile ``kernels/<op>.cu`` with every name of the launcher's KERNELS, as CuPy does at run time."""
    from gpumetrics._cuda import _loader  # noqa: PLC0415

    names = tuple(_loader.kernel_names(op))
    text = _loader.kernel_source(op) if source is None else source
    check = OpCheck(op, repr(compiler), arch)
    try:
        res = compiler.compile(text, arch, _loader.COMPILE_OPTIONS, f"{op}.cu", names)
    except NvrtcError as err:
        check.error = str(err)
        return check
    check.warnings = res.warnings
    check.resources = res.resources
    check.missing = [n for n in names if n not in res.resources]
    return check
