"""Grid sizing shared by the launchers. Module constants, so tests can shrink them."""
from __future__ import annotations

from gpumetrics._cuda._runtime import get_runtime

# Blocks per SM for grid-stride kernels: enough to hide latency, few enough that per-block flushes stay cheap.
BLOCKS_PER_SM = 4


def grid_for(n: int, block: int) -> int:
    """Blocks for ``n`` work items and ``block`` threads: at most BLOCKS_PER_SM per SM, at least 1."""
    wanted = max(1, -(-int(n) // block))
    return min(wanted, BLOCKS_PER_SM * get_runtime().multiprocessor_count())
