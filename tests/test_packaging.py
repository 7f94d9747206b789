"""The wheel ships the kernel sources, and an installed copy finds them without the checkout."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_kernels_and_finds_them(tmp_path):
    pytest.importorskip("hatchling")
    pytest.importorskip("build")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True, text=True)
    wheel = next(tmp_path.glob("gpumetrics-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    sources = {p.name for p in (ROOT / "kernels").glob("*.cu*")}
    assert {f"gpumetrics/_kernels/{name}" for name in sources} <= names
    assert "gpumetrics/py.typed" in names
    code = ("from gpumetrics._cuda import _loader; d = _loader.kernel_dir(); print(d); "
            "print(len(_loader.kernel_source('elementwise_sum')))")
    env = {k: v for k, v in os.environ.items() if k not in ("GPUMETRICS_KERNEL_DIR", "PYTHONPATH")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(tmp_path / "site")},
                         check=True, capture_output=True, text=True).stdout.split()
    assert Path(out[0]) == tmp_path / "site" / "gpumetrics" / "_kernels"
    assert int(out[1]) > 1000


def test_checkout_finds_kernels():
    from gpumetrics._cuda import _loader

    assert _loader.kernel_dir() == ROOT / "kernels"
    assert "elementwise_sum" in _loader.ops()
