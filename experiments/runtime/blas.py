"""Which BLAS computes a run's products, on which CPU: what its last bits depend on.

Floating-point sums depend on their order, and a BLAS kernel orders a matrix
product's sums its own way: another kernel (another CPU, another OpenBLAS build,
or OPENBLAS_CORETYPE pinning an older one) gives products that differ in the
last bit, and training amplifies the difference. So a run is bit-identical only
on the same machine with the same BLAS; elsewhere it agrees within seed noise.
Every run records its `Machine` (experiments.runs.logged), and `make rerun` says what
differs.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from experiments.runtime.threads import current_blas_threads


@dataclass(frozen=True)
class Machine:
    """What a run's rounding depends on, besides its config, code and data."""

    blas: str  # NumPy's BLAS library and version, e.g. "openblas 0.3.31.188.0"
    kernel: str  # the kernel it runs, e.g. "Haswell" (threadpoolctl's architecture)
    threads: int  # the threads BLAS is on now
    cpu: str  # the CPU's model name, e.g. "AMD EPYC"


def blas_library() -> tuple[str, str]:
    """(library and version, kernel) of NumPy's BLAS, e.g. ("openblas 0.3.31", "Haswell")."""
    import numpy  # threadpoolctl sees only libraries already loaded
    from threadpoolctl import threadpool_info

    pools = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    if not pools:
        return "unknown", "unknown"
    # scipy.stats (the report's intervals, scikit-learn) loads an OpenBLAS of its own, and
    # which one threadpoolctl lists first depends on the load order: NumPy's is the one
    # its wheel ships beside it (numpy.libs/) or in its folder.
    site = Path(numpy.__file__).resolve().parent
    own = [pool for pool in pools
           if Path(pool.get("filepath", "")).resolve().parent in (site, site.with_name(
               "numpy.libs"), site / ".libs")]
    pool = (own or pools)[0]
    library = f"{pool.get('internal_api', 'unknown')} {pool.get('version') or ''}".strip()
    return library, str(pool.get("architecture") or pool.get("threading_layer") or "unknown")


def cpu_model() -> str:
    """The CPU's model name as the operating system reports it, e.g. "AMD EPYC"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def this_machine() -> Machine:
    """The BLAS, its kernel and threads now, and the CPU."""
    library, kernel = blas_library()
    return Machine(library, kernel, current_blas_threads(), cpu_model())
