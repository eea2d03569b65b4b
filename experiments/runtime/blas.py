"""Which BLAS computes a run's products, on which CPU: what its last bits depend on.

Floating-point sums depend on their order, and a BLAS kernel orders a matrix
product's sums its own way: another kernel (another CPU, another OpenBLAS build,
or OPENBLAS_CORETYPE pinning an older one) gives products that differ in the
last bit, and training amplifies the difference. So a run is bit-identical only
on the same machine with the same BLAS; elsewhere it agrees within seed noise.
Every run records its `Machine` (experiments.runs.logged), and `make rerun` says what
differs.

The kernel also sets the speed: `kernel_pin` tells when an environment variable holds
BLAS below the instruction set the CPU runs (OPENBLAS_CORETYPE=Haswell on an AVX-512
CPU halves a one-thread float32 product), so that a benchmark can say so.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
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


# The instruction sets BLAS kernels are built for, lowest first, and the CPU flag that says
# a CPU runs each (as /proc/cpuinfo spells it).
ISA_LEVELS = ("SSE", "AVX", "AVX2", "AVX-512")
_ISA_FLAGS = {"AVX": "avx", "AVX2": "avx2", "AVX-512": "avx512f"}

# OpenBLAS's coretype names (OPENBLAS_CORETYPE, threadpoolctl's architecture), lower-cased,
# by the instruction set their kernels use; a name not listed here is not compared.
OPENBLAS_CORETYPES = {
    "AVX-512": ("skylakex", "cooperlake", "sapphirerapids"),
    "AVX2": ("haswell", "zen", "skylake", "cannonlake"),
    "AVX": ("sandybridge", "bulldozer", "piledriver", "steamroller", "excavator"),
    "SSE": ("nehalem", "core2", "penryn", "dunnington", "atom", "prescott", "katmai",
            "coppermine", "northwood", "opteron", "barcelona", "bobcat", "nano"),
}


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags ("avx2", "avx512f", ...) from the text of /proc/cpuinfo
    (read when not given); empty where the system does not say."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_isa(flags: frozenset[str]) -> str:
    """The widest instruction set of ISA_LEVELS that a CPU with these flags runs."""
    return next((isa for isa in reversed(ISA_LEVELS[1:]) if _ISA_FLAGS[isa] in flags), "SSE")


def _pinned_isa(variable: str, value: str) -> str | None:
    """The instruction set a BLAS-pinning variable's value holds the kernel to, if known."""
    value = value.strip().lower()
    if variable == "OPENBLAS_CORETYPE":
        return next((isa for isa, names in OPENBLAS_CORETYPES.items() if value in names), None)
    # MKL_ENABLE_INSTRUCTIONS: SSE4_2, AVX, AVX2, AVX512, AVX2_E1, AVX512_E4, ...
    base = value.split("_e")[0].replace("sse4_2", "sse").upper()
    return {"SSE": "SSE", "AVX": "AVX", "AVX2": "AVX2", "AVX512": "AVX-512"}.get(base)


# Variables that pin a kernel, and those that only tune it (named beside a pin).
_PINNING = ("OPENBLAS_CORETYPE", "MKL_ENABLE_INSTRUCTIONS")
_TUNING = ("OPENBLAS_L2_SIZE", "MKL_CBWR")


def kernel_pin(environ: Mapping[str, str], flags: frozenset[str]) -> str | None:
    """One line when a variable of `environ` pins BLAS to a kernel below what a CPU with
    `flags` runs, naming it and how to measure the native speed; None otherwise (nothing
    pinned, a pin at the CPU's own level, or a value this table does not know)."""
    native = cpu_isa(flags)
    below = [(name, environ[name], isa) for name in _PINNING if environ.get(name)
             for isa in [_pinned_isa(name, environ[name])]
             if isa is not None and ISA_LEVELS.index(isa) < ISA_LEVELS.index(native)]
    if not below:
        return None
    tuning = [name for name in _TUNING if environ.get(name)]
    pins = ", ".join(f"{name}={value} ({isa})" for name, value, isa in below)
    extra = "".join(f", {name}={environ[name]}" for name in tuning)
    unset = " ".join(f"-u {name}" for name in [*(b[0] for b in below), *tuning])
    return (f"kernel pinned below this CPU's {native}: {pins}{extra}; these figures are not "
            f"the machine's native speed, which `env {unset} make bench` measures")
