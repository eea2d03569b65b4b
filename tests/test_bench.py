"""python -m experiments.bench: the figures `make bench` prints, on a tiny batch (speed itself is
read from `make bench`, never asserted here)."""

import re

import pytest

from cnn.models import build_model
from experiments import bench
from experiments.benchmark.timing import interleaved_medians


def test_bench_prints_throughput_layers_and_conv_efficiency(capsys):
    results = bench.main(
        ["--models", "seed", "--batch-size", "4", "--repeats", "2", "--warmup", "1",
         "--no-torch", "--no-memory", "--no-mlflow"]
    )
    out = capsys.readouterr().out
    assert re.search(r"float32 matrix product, timed between the layer passes: [\d.]+ GFLOP/s", out)
    assert re.search(r"== seed: train \d+ img/s, inference \d+ img/s", out)
    (result,) = results
    assert [t.name for t in result.layers] == build_model("seed").names
    convs = [t for t in result.layers if t.conv_gflops is not None]
    assert [t.name for t in convs] == ["conv1", "conv2"]
    assert all(t.conv_gflops > 0 and t.forward_ms > 0 and t.backward_ms > 0 for t in convs)
    for t in convs:  # one row per convolution, with its share of the matmul yardstick
        assert re.search(rf"^{t.name}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+%$", out, re.MULTILINE)
    share = re.search(r"^all convs\s+([\d.]+)\s+\d+%$", out, re.MULTILINE)
    assert share and min(t.conv_gflops for t in convs) <= float(share[1]) <= max(
        t.conv_gflops for t in convs) + 0.1
    assert "ratio_vs_torch" not in out  # nothing to compare with


def test_interleaved_medians_time_every_contender_in_turns():
    calls = []
    medians = interleaved_medians(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        repeats=4, warmup=1, block=3,
    )
    # Warm-up, then turns of one untimed and two timed calls, until each has 4 timings.
    assert calls == ["a", "b"] + (["a"] * 3 + ["b"] * 3) * 2
    assert set(medians) == {"a", "b"} and all(s >= 0 for s in medians.values())


@pytest.mark.torch
def test_bench_compares_with_the_pytorch_twin(capsys):
    pytest.importorskip("torch")
    bench.main(
        ["--models", "seed", "--batch-size", "4", "--repeats", "2", "--warmup", "1",
         "--no-memory", "--no-mlflow"]
    )
    out = capsys.readouterr().out
    assert re.search(r"PyTorch twin: train \d+ img/s, inference \d+ img/s", out)
    assert re.search(r"^seed train_ratio_vs_torch=[\d.]+ infer_ratio_vs_torch=[\d.]+$", out,
                     re.MULTILINE)
