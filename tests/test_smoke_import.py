import subprocess
import sys


def test_import_pulls_in_neither_cupy_nor_torch():
    code = "import sys, gpumetrics; print(sorted(m for m in ('cupy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
