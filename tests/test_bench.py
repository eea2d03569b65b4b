"""python -m experiments.bench: the figures `make bench` prints, on a tiny batch (speed itself is
read from `make bench`, never asserted here)."""

import re

import numpy as np
import pytest

from cnn.layers import Conv2D, Dense
from cnn.models import build_model
from experiments import bench
from experiments.benchmark.ceiling import ceiling
from experiments.benchmark.layer_times import profile_steps
from experiments.benchmark.timing import batch, interleaved_medians
from experiments.runtime.blas import this_machine


@pytest.mark.slow  # times training steps and an epoch
def test_bench_prints_and_logs_layers_ceiling_and_a_full_epoch(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    results = bench.main(
        ["--models", "seed", "--batch-size", "4", "--repeats", "2", "--warmup", "1",
         "--epoch-images", "40", "--no-torch", "--rounds", "2"]
    )
    out = capsys.readouterr().out
    machine = this_machine()
    assert f"CPU {machine.cpu}; NumPy's BLAS {machine.blas}, {machine.kernel} kernel" in out
    assert re.search(r"^2 rounds of fresh processes: NumPy train \d+ img/s, inference \d+ "
                     r"img/s$", out, re.MULTILINE)
    assert re.search(r"^machine load while measured: .*load average [\d.]+ the minute before$",
                     out, re.MULTILINE)
    assert re.search(r"float32 matrix product, timed in a block of its own: [\d.]+ GFLOP/s", out)
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
    # The layers were timed inside the steps, so together they take no longer than a step.
    summed = re.search(r"the layers take ([\d.]+) ms of a ([\d.]+) ms training step", out)
    assert summed and 0 < float(summed[1]) <= float(summed[2]) + 0.1
    assert re.search(r"^ceiling: [\d,]+ img/s training \(NumPy at \d+%\*?\), [\d,]+ img/s "
                     r"inference \(NumPy at \d+%\*?\)", out, re.MULTILINE)
    epoch = result.epoch
    assert epoch.images == 40 and epoch.seconds > 0 and epoch.peak_rss_mb > 0
    assert re.search(r"one epoch of 40 synthetic images .*: [\d.]+ s, \d+ img/s; "
                     r"peak resident memory \d+ MB", out)
    (last,) = [line for line in out.splitlines() if line.startswith("seed ")]
    assert re.fullmatch(r"seed train_of_ceiling=[\d.]+ infer_of_ceiling=[\d.]+ "
                        r"epoch_s=[\d.]+ peak_rss_mb=\d+", last)
    assert "ratio_vs_torch" not in out  # nothing to compare with

    import mlflow

    (run,) = mlflow.search_runs(experiment_names=["benchmarks"], output_format="list")
    logged = run.data.metrics
    assert run.info.status == "FINISHED" and run.data.params["epoch_images"] == "40"
    assert run.data.tags["blas_kernel"] == machine.kernel and run.data.tags["cpu"] == machine.cpu
    assert run.data.params["rounds"] == "2" and "kernel_pin" in run.data.params
    assert logged["train_of_ceiling"] <= 1 and "others_cores" in logged
    assert logged["epoch_s"] == pytest.approx(epoch.seconds)
    assert logged["peak_rss_mb"] == pytest.approx(epoch.peak_rss_mb)
    assert logged["train_of_ceiling"] == pytest.approx(result.of_ceiling("numpy", "train")[0])
    assert logged["layers_ms"] <= logged["step_ms"] + 0.1


def test_ceiling_counts_every_product_of_a_training_step():
    net = build_model("seed")
    x, y = batch(3)
    profile = profile_steps(net, x, y, repeats=1, warmup=0)
    # Counted here from the weights' shapes: W.size multiply-adds per output pixel.
    forward = {
        name: 2 * layer.params["W"].size * len(x) * (
            np.prod(out.shape[1:3]) if isinstance(layer, Conv2D) else 1)
        for (name, layer), out in zip(net.named_layers(), _outputs(net, x), strict=True)
        if isinstance(layer, Conv2D | Dense)
    }
    first = net.names[0]  # its backward skips dx: one product, not two
    train = sum(f * (2 if name == first else 3) for name, f in forward.items())
    c = ceiling(profile.layers, len(x), matmul_gflops=50.0)
    assert c.train_gflop * 1e9 == pytest.approx(train)
    assert c.infer_gflop * 1e9 == pytest.approx(sum(forward.values()))
    assert c.train_images_per_s == pytest.approx(len(x) * 50e9 / train)


def _outputs(net, x):
    outs = []
    for layer in net.layers:
        x = layer.forward(x, training=False)
        outs.append(x)
    return outs


def test_profile_times_every_leaf_inside_training_steps_and_restores_them():
    net = build_model("resnet", depth=8, widths=[4, 8, 8])
    x, y = batch(2)
    before = {k: v.copy() for k, v in net.params.items()}
    profile = profile_steps(net, x, y, repeats=2, warmup=1)
    assert [t.name for t in profile.layers] == [name for name, _ in net.named_leaves()]
    assert "stage2.block1.shortcut.conv" in [t.name for t in profile.layers]  # inside blocks
    assert all(t.forward_ms > 0 and t.backward_ms > 0 for t in profile.layers)
    # In every step the layers took part of the step's time, so in the medians too.
    assert 0 < profile.layers_ms <= profile.step_ms
    assert not profile.layers[0].input_grad and all(t.input_grad for t in profile.layers[1:])
    assert any(not np.array_equal(before[k], v) for k, v in net.params.items())  # real steps
    # The clocks are gone: the leaves' passes are their classes' methods again.
    assert all("forward" not in vars(leaf) and "backward" not in vars(leaf)
               for _, leaf in net.named_leaves())


@pytest.mark.parametrize("option", ["--epoch-images", "--rounds"])
def test_epoch_images_and_rounds_must_be_positive(option, capsys):
    with pytest.raises(SystemExit):
        bench.main([option, "0", "--no-mlflow"])
    assert f"{option} must be at least 1, got 0" in capsys.readouterr().err


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
         "--no-epoch", "--no-mlflow", "--rounds", "2"]
    )
    out = capsys.readouterr().out
    assert re.search(r"^2 rounds of fresh processes: NumPy train \d+ img/s, inference \d+ "
                     r"img/s; PyTorch twin train \d+ img/s, inference \d+ img/s$", out,
                     re.MULTILINE)
    # A ratio with its range, or why it is not shown (a tiny batch on a shared machine).
    assert re.search(r"^training ratio vs PyTorch: ([\d.]+|not shown, .+) \([\d.]+-[\d.]+ over "
                     r"the rounds\)$", out, re.MULTILINE)
    assert re.search(r"^ceiling: [\d,]+ img/s training \(NumPy at \d+%\*?, PyTorch at \d+%\*?\), "
                     r"[\d,]+ img/s inference \(NumPy at \d+%\*?, PyTorch at \d+%\*?\)", out,
                     re.MULTILINE)
    assert re.search(r"^seed (train_ratio_vs_torch=[\d.]+ )?(infer_ratio_vs_torch=[\d.]+ )?"
                     r"train_of_ceiling=[\d.]+ infer_of_ceiling=[\d.]+ "
                     r"torch_train_of_ceiling=[\d.]+ torch_infer_of_ceiling=[\d.]+$", out,
                     re.MULTILINE)
