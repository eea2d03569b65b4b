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


AVX512_CPU = frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw"})
AVX2_CPU = frozenset({"sse4_2", "avx", "avx2", "fma"})


def test_cpu_flags_are_read_from_cpuinfo_text():
    text = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 avx512f\n"
    flags = blas.cpu_flags(text)
    assert {"avx2", "avx512f"} <= flags and blas.cpu_isa(flags) == "AVX-512"
    assert blas.cpu_isa(blas.cpu_flags("flags : fpu sse4_2 avx avx2\n")) == "AVX2"
    assert blas.cpu_isa(blas.cpu_flags("model name : ARM\n")) == "SSE"  # no flags line


def test_a_coretype_below_the_cpu_is_named_with_the_command_for_native_speed():
    pinned = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}
    line = blas.kernel_pin(pinned, AVX512_CPU)
    assert "OPENBLAS_CORETYPE=Haswell (AVX2)" in line and "AVX-512" in line
    assert "OPENBLAS_L2_SIZE=512" in line
    assert "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE make bench`" in line
    # Haswell on a CPU without AVX-512 is its native level: nothing to say.
    assert blas.kernel_pin(pinned, AVX2_CPU) is None
    # The coretype name is matched whatever its case; a pin to the CPU's own level is fine.
    assert blas.kernel_pin({"OPENBLAS_CORETYPE": "SKYLAKEX"}, AVX512_CPU) is None
    assert "SandyBridge" in blas.kernel_pin({"OPENBLAS_CORETYPE": "SandyBridge"}, AVX2_CPU)


def test_nothing_pinned_or_an_unknown_value_says_nothing():
    assert blas.kernel_pin({}, AVX512_CPU) is None
    assert blas.kernel_pin({"OPENBLAS_L2_SIZE": "512"}, AVX512_CPU) is None  # tunes, pins not
    assert blas.kernel_pin({"OPENBLAS_CORETYPE": "Zen9"}, AVX512_CPU) is None
    assert blas.kernel_pin({"OPENBLAS_CORETYPE": ""}, AVX512_CPU) is None


def test_mkl_instruction_limits_count_as_pins():
    line = blas.kernel_pin({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, AVX512_CPU)
    assert "MKL_ENABLE_INSTRUCTIONS=AVX2 (AVX2)" in line
    assert "`env -u MKL_ENABLE_INSTRUCTIONS make bench`" in line
    assert blas.kernel_pin({"MKL_ENABLE_INSTRUCTIONS": "AVX512_E1"}, AVX512_CPU) is None
    assert "(SSE)" in blas.kernel_pin({"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, AVX2_CPU)
