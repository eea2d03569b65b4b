"""What `make bench` concludes from its measurements, on made-up ones: a ratio against
PyTorch only when the rounds agree and the machine was quiet, shares of the ceiling never
above 1, the rounds' processes in alternating order, and the machine it ran on."""

import os

import pytest

from experiments.benchmark import load, turns
from experiments.benchmark.ceiling import Ceiling
from experiments.benchmark.load import Load, untrusted
from experiments.benchmark.models import ModelResult
from experiments.benchmark.results import (
    ceiling_lines,
    machine_lines,
    rounds_lines,
    summary_lines,
    summary_metrics,
)
from experiments.benchmark.turns import Turn
from experiments.runtime.blas import Machine

QUIET = Load(cores=2, load_average=0.1, others_cores=0.05)
BUSY = Load(cores=2, load_average=3.0, others_cores=1.2)


def _result(numpy_train_s, torch_train_s, load=QUIET, gflops=(100.0, 100.0)) -> ModelResult:
    """A vgg result whose rounds took these step times (inference a third of them)."""
    rounds = [{"numpy": Turn("numpy", n, n / 3, gflops[0]),
               "torch": Turn("torch", t, t / 3, gflops[1])}
              for n, t in zip(numpy_train_s, torch_train_s, strict=True)]
    return ModelResult("vgg", 128 / numpy_train_s[0], 384 / numpy_train_s[0],
                       ceiling=Ceiling(1000.0, 3000.0, train_gflop=12.8, infer_gflop=4.3),
                       torch_train_images_per_s=128 / torch_train_s[0],
                       torch_infer_images_per_s=384 / torch_train_s[0],
                       rounds=rounds, load=load)


def test_a_ratio_is_trusted_only_when_rounds_agree_on_a_quiet_machine():
    assert untrusted([0.80, 0.82, 0.78], QUIET) is None
    assert "disagree: 0.62 to 2.60" in untrusted([0.62, 0.80, 2.60], QUIET)
    assert "busy: other processes kept 1.2 of 2 cores" in untrusted([0.80, 0.81], BUSY)
    assert "one round" in untrusted([0.80], QUIET)
    # Without /proc/stat, the load average before the measurement decides.
    no_stat = Load(cores=2, load_average=1.5, others_cores=None)
    assert "load average 1.5 on 2 cores" in untrusted([0.80, 0.81], no_stat)
    assert untrusted([0.80, 0.81], Load(2, 0.3, None)) is None


def test_from_five_rounds_one_outlying_round_does_not_hide_the_median():
    # The five-round spreads of one idle machine's inference: one round a tenth off.
    assert untrusted([0.76, 0.79, 0.78, 0.92, 0.77], QUIET) is None
    assert untrusted([0.76, 0.79, 0.78, 0.92], QUIET) is not None  # four: all judged
    # Two outlying rounds still disagree, and the message says which rounds were judged.
    assert "the middle rounds disagree: 0.60 to 0.90" in untrusted(
        [0.40, 0.60, 0.78, 0.90, 1.20], QUIET)


def test_an_untrusted_ratio_is_said_instead_of_printed():
    wild = _result([0.10, 0.10, 0.10], [0.08, 0.26, 0.04])  # NumPy over PyTorch: 0.8, 2.6, 0.4
    lines = rounds_lines(wild)
    assert any(line.startswith("training ratio vs PyTorch: not shown, the rounds disagree")
               and "(0.40-2.60 over the rounds)" in line for line in lines)
    assert "train_ratio_vs_torch" not in summary_lines([wild])[0]
    # Logged all the same, to be studied later.
    assert summary_metrics(wild, trusted_only=False)["train_ratio_vs_torch"] == pytest.approx(0.8)
    calm = _result([0.10, 0.10, 0.10], [0.080, 0.081, 0.079])
    assert "training ratio vs PyTorch: 0.80 (0.79-0.81 over the rounds)" in rounds_lines(calm)
    assert summary_lines([calm])[0].startswith("vgg train_ratio_vs_torch=0.80 ")
    busy = _result([0.10, 0.10], [0.080, 0.081], load=BUSY)
    assert "not shown, the machine was busy" in rounds_lines(busy)[1]
    assert "1.20 of 2 cores busy; load average 3.00" in rounds_lines(busy)[-1]


def test_a_share_of_the_ceiling_is_capped_at_one_with_its_reason():
    # 12.8 GFLOP in 0.1 s is 128 GFLOP/s: above the 100 GFLOP/s of NumPy's own product.
    fast = _result([0.1, 0.1], [0.2, 0.2])
    assert fast.of_ceiling("numpy", "train") == (1.0, True)
    assert fast.of_ceiling("torch", "train") == (pytest.approx(0.64), False)
    assert summary_metrics(fast)["train_of_ceiling"] == 1.0
    line, reason = ceiling_lines(fast)
    assert "NumPy at 100%*, PyTorch at 64%" in line and reason.startswith("* capped at 100%")
    # Each library against its own product timed in its own process: a PyTorch product
    # twice as fast halves PyTorch's share.
    own = _result([0.2, 0.2], [0.2, 0.2], gflops=(100.0, 200.0))
    assert own.of_ceiling("torch", "train")[0] == pytest.approx(own.of_ceiling(
        "numpy", "train")[0] / 2)
    assert len(ceiling_lines(own)) == 1


def test_rounds_alternate_which_library_goes_first_each_in_a_fresh_process(monkeypatch):
    calls = []

    def fake(fn, args, what):
        assert args[-1] is True  # fuse reaches every process
        calls.append(args[0])
        return Turn(args[0], 1.0, 1.0, 1.0)

    monkeypatch.setattr(turns, "in_fresh_process", fake)
    rounds = turns.rounds_in_fresh_processes("seed", 4, 1, 0, rounds=3, fuse=True)
    assert calls == ["numpy", "torch", "torch", "numpy", "numpy", "torch"]
    assert [sorted(r) for r in rounds] == [["numpy", "torch"]] * 3
    with pytest.raises(ValueError, match="--rounds must be at least 1"):
        turns.rounds_in_fresh_processes("seed", 4, 1, 0, rounds=0)


def test_busy_time_is_read_from_proc_stat_text():
    ticks = os.sysconf("SC_CLK_TCK")
    text = f"cpu  {ticks} 0 {ticks} 99999 7 0 0 {ticks} 0 0\ncpu0 1 2 3 4\n"
    assert load.machine_busy_seconds(text) == pytest.approx(3.0)  # user, system and steal
    assert load.machine_busy_seconds("") is None


def test_the_machine_lines_name_cpu_blas_kernel_threads_and_a_pin():
    machine = Machine("openblas 0.3.31", "Haswell", 2, "AMD EPYC 9B45")
    assert machine_lines(machine, None) == [
        "CPU AMD EPYC 9B45; NumPy's BLAS openblas 0.3.31, Haswell kernel, 2 threads"]
    assert machine_lines(machine, "kernel pinned below ...")[1] == "kernel pinned below ..."
