"""The blas tag names NumPy's BLAS even when scipy.stats (the report's intervals) has
loaded an OpenBLAS of its own and threadpoolctl happens to list that one first."""

from pathlib import Path

import numpy

from experiments.runtime import blas


def test_numpys_blas_is_reported_whichever_is_listed_first(monkeypatch):
    site = Path(numpy.__file__).resolve().parent
    pools = [
        {"user_api": "blas", "internal_api": "openblas", "version": "0.3.30",
         "architecture": "Zen", "filepath": str(site.with_name("scipy.libs") / "libscipy.so")},
        {"user_api": "blas", "internal_api": "openblas", "version": "0.3.31",
         "architecture": "Haswell", "filepath": str(site.with_name("numpy.libs") / "lib.so")},
    ]
    monkeypatch.setattr("threadpoolctl.threadpool_info", lambda: pools)
    assert blas.blas_library() == ("openblas 0.3.31", "Haswell")
    # With no library beside NumPy (a system BLAS), the first one listed, as before.
    monkeypatch.setattr("threadpoolctl.threadpool_info", lambda: pools[:1])
    assert blas.blas_library() == ("openblas 0.3.30", "Zen")
