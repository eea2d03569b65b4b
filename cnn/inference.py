"""Inference: a forward pass that keeps nothing for backward, with batch norm folded in.

In evaluation mode batch norm is a fixed affine map per channel,
y = scale * x + shift with scale = gamma / sqrt(running_var + eps) and
shift = beta - running_mean * scale. After a convolution it can be folded into
the convolution's own weights and bias:

    bn(conv(x)) = conv(x; W * scale) + (b * scale + shift)

so conv - bn - relu runs as one convolution whose chunks get their bias and
ReLU while still in the cache (Conv2D.convolve), instead of three passes over
the whole output. Max-pooling keeps no record of its winners. Residual blocks
get the same treatment on each of their two paths. Every other layer
runs its own evaluation-mode forward. The result equals
Sequential.forward(x, training=False) up to float rounding (tests/test_core_inference.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnn.layers import BatchNorm2D, Conv2D, Layer, MaxPool2D, ReLU, ResidualBlock
from cnn.layers.pooling import max_pool


def folded_weights(conv: Conv2D, bn: BatchNorm2D | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The weights (KH, KW, C_in, F) and bias (F,) of conv followed by bn in evaluation mode
    (the conv's own when bn is None)."""
    weights, bias = conv.params["W"], conv.params.get("b")
    if bn is None:
        return weights, bias
    inv_std = 1.0 / np.sqrt(bn.buffers["running_var"] + bn.eps)  # (F,)
    scale = (bn.params["gamma"] * inv_std).astype(weights.dtype)  # (F,)
    shift = bn.params["beta"] - bn.buffers["running_mean"] * scale  # (F,)
    if bias is not None:
        shift = shift + bias * scale
    return weights * scale, shift.astype(weights.dtype)  # scale broadcasts over F, the last axis


def infer(layers: Sequence[Layer], x: np.ndarray) -> np.ndarray:
    """Evaluation-mode output of `layers` applied in order to x; nothing is cached."""
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv2D):
            following = layers[i + 1] if i + 1 < len(layers) else None
            bn = following if type(following) is BatchNorm2D else None
            i += 1 if bn is None else 2
            relu = i < len(layers) and type(layers[i]) is ReLU
            i += relu
            x = layer.convolve(x, *folded_weights(layer, bn), relu=relu)
        elif type(layer) is ResidualBlock:
            x = _residual(layer, x)
            i += 1
        elif type(layer) is MaxPool2D:
            x = max_pool(x, layer.kernel, layer.stride)
            i += 1
        else:
            x = layer.forward(x, training=False)
            i += 1
    return x


def _residual(block: ResidualBlock, x: np.ndarray) -> np.ndarray:
    """act2(main(x) + shortcut(x)), each path through `infer`."""
    h = infer([block.sublayers[name] for name in block.main_names], x)  # (N, Ho, Wo, C_out)
    if block.shortcut != "none":
        h += infer([block.sublayers[name] for name in block.shortcut_names], x)
    act = block.sublayers["act2"]
    return np.maximum(h, 0, out=h) if type(act) is ReLU else act.forward(h, training=False)
