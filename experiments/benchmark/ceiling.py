"""The physical limit of a training step: its FLOPs over NumPy's matrix-product rate.

Only convolutions and dense layers are counted (every other layer's arithmetic is a few
operations per value, bound by memory, not FLOPs). A forward pass does one product per
layer; backward does two of the same size (the weight gradient and the input gradient),
or one where the input gradient is skipped (the network's first layer, in training).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnn.layers import Conv2D, Dense
from experiments.benchmark.layer_times import LayerTiming


def forward_flops(t: LayerTiming) -> int:
    """Multiply-adds x 2 of the leaf's forward pass on its timed batch; 0 if not counted.

    Conv2D: every output value of (N, Ho, Wo, F) is a KH*KW*C dot product; Dense: every
    output value of (N, D_out) is a D_in dot product."""
    if isinstance(t.layer, Conv2D):
        n, ho, wo, f = t.out_shape
        kh, kw = t.layer.kernel
        return 2 * n * ho * wo * f * kh * kw * t.layer.in_channels
    if isinstance(t.layer, Dense):
        n, out = t.out_shape
        return 2 * n * t.layer.in_features * out
    return 0


def training_flops(t: LayerTiming) -> int:
    """Forward and backward FLOPs of the leaf in one training step."""
    return forward_flops(t) * (3 if t.input_grad else 2)


@dataclass(frozen=True)
class Ceiling:
    """Images per second if every counted FLOP ran at the matrix product's rate."""

    train_images_per_s: float
    infer_images_per_s: float
    train_gflop: float  # of one training step of the timed batch
    infer_gflop: float  # of one inference pass


def ceiling(layers: list[LayerTiming], batch_size: int, matmul_gflops: float) -> Ceiling:
    """The ceiling of a network whose leaves were timed on batches of `batch_size`."""
    train = sum(training_flops(t) for t in layers) / 1e9
    infer = sum(forward_flops(t) for t in layers) / 1e9
    if train == 0:
        raise ValueError("the network has no convolution or dense layer to count FLOPs of")
    return Ceiling(batch_size * matmul_gflops / train, batch_size * matmul_gflops / infer,
                   train, infer)


def add_conv_gflops(layers: list[LayerTiming]) -> None:
    """Fill each convolution's GFLOP/s: its training FLOPs over its forward and backward time."""
    for t in layers:
        if isinstance(t.layer, Conv2D):
            t.conv_gflops = training_flops(t) / ((t.forward_ms + t.backward_ms) / 1e3) / 1e9
