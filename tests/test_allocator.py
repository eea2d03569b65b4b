"""experiments.runtime.allocator: freed arrays are reused instead of page-faulting fresh memory."""

import subprocess
import sys

import pytest

# Allocates, fills and frees a 16 MB array 20 times; prints the page faults of the loop.
_PROBE = """
import resource, sys
import numpy as np
from experiments.runtime.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
np.ones(4 * 2**20, dtype=np.float32)  # the first one faults either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(4 * 2**20, dtype=np.float32)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tunes glibc's malloc")
def test_freed_arrays_are_reused_without_page_faults():
    kept, default = _faults("keep"), _faults("default")
    assert kept < 100, kept  # the same heap block, already mapped, every time
    assert default > 20 * 5, default  # glibc's default: fresh memory for each array
