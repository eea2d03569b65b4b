"""Layers in chunks, on threads: the threads never change a result, and another chunking
changes it by no more than the rounding of its sums."""

import time

import numpy as np
import pytest
from rounding import assert_within_rounding

from cnn import parallel
from cnn.layers import BatchNorm2D, Conv2D, MaxPool2D, ReLU
from cnn.layers.im2col import pad_hw
from cnn.parallel import batch_chunks, map_chunks


def test_map_chunks_keeps_chunk_order_when_threads_finish_out_of_order():
    def slow_first(i: int) -> int:
        time.sleep(0.05 if i == 0 else 0.0)
        return i * i

    with parallel.threads(3):
        assert map_chunks(slow_first, list(range(6))) == [i * i for i in range(6)]
        assert map_chunks(slow_first, [4]) == [16]


@pytest.mark.parametrize(
    ("n", "item", "budget"),
    [
        (128, 147_456, 4 << 20),
        (128, 1_179_648, 4 << 20),
        (7, 10, 25),
        (3, 100, 10),
        (128, 1, 4 << 20),
    ],
)
def test_batch_chunks_cover_the_batch_in_balanced_slices(n, item, budget):
    chunks = batch_chunks(n, item, budget)
    sizes = [c.stop - c.start for c in chunks]
    assert chunks[0].start == 0 and chunks[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:], strict=False))
    assert max(sizes) - min(sizes) <= 1
    assert len(chunks) == 1 or len(chunks) % 4 == 0 or len(chunks) == n
    if len(chunks) > 1:  # no more slices than the budget needs, rounded to a multiple of 4
        assert len(chunks) < -(-n * item // budget) + 4


def _conv(stride: int, padding: int, dtype, absolute: bool = False) -> Conv2D:
    """A small convolution; with `absolute`, the same one with |W| and |b|, whose
    outputs and gradients on |x| and |dout| are the sums over absolute values."""
    conv = Conv2D(3, 4, 3, stride=stride, padding=padding, rng=np.random.default_rng(1),
                  dtype=dtype)
    if absolute:
        for key in conv.params:
            np.abs(conv.params[key], out=conv.params[key])
    return conv


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("stride", "padding"), [(1, 1), (2, 1), (1, 0)])
def test_conv_in_one_chunk_or_many_agrees_within_the_rounding_of_its_sums(stride, padding,
                                                                          dtype):
    """Another chunking makes BLAS add a product's terms in another order, so the last
    bits may differ (they do with some OpenBLAS kernels); by no more than rounding allows.
    The bound is each sum taken over absolute values, by the same layer on |x|, |W|."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 9, 9, 3)).astype(dtype)
    whole, pieces = _conv(stride, padding, dtype), _conv(stride, padding, dtype)
    size = _conv(stride, padding, dtype, absolute=True)
    pieces.chunk_bytes = 1  # one image per chunk, on three threads below
    out = whole.forward(x, training=True)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = whole.backward(dout)
    out_size, dx_size = size.forward(np.abs(x), training=True), size.backward(np.abs(dout))
    with parallel.threads(3):
        out_pieces, dx_pieces = pieces.forward(x, training=True), pieces.backward(dout)
    assert len(pieces._chunks(x, *out.shape[1:3])) == len(x) > 1
    kh, kw = whole.kernel
    assert_within_rounding(out_pieces, out, out_size, length=kh * kw * 3 + 1)  # + the bias
    assert_within_rounding(dx_pieces, dx, dx_size, length=kh * kw * whole.out_channels)
    rows = out.shape[0] * out.shape[1] * out.shape[2]  # dW and db add one term per row
    for key in whole.grads:
        assert_within_rounding(pieces.grads[key], whole.grads[key], size.grads[key], rows)


def test_the_rounding_bound_catches_a_chunk_computed_wrong():
    """The bound above is tight enough to matter: one image's output off by a part in
    10^5 (float64) breaks it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 9, 9, 3))
    conv, size = _conv(1, 1, np.float64), _conv(1, 1, np.float64, absolute=True)
    out = conv.forward(x, training=True)
    wrong = out.copy()
    wrong[3] *= 1 + 1e-5
    with pytest.raises(AssertionError, match="rounding of a sum of 28 terms"):
        assert_within_rounding(wrong, out, size.forward(np.abs(x), training=True), 28)


def test_conv_chunks_on_threads_are_bit_identical_to_the_same_chunks_in_turn():
    """The same chunks give the same bits on any number of threads, with BLAS on one thread
    (experiments.runtime.threads.chunk_threads) as in every run: by construction."""
    from experiments.runtime.threads import chunk_threads

    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 12, 12, 8), dtype=np.float32)
    convs = [Conv2D(8, 16, 3, padding=1, rng=np.random.default_rng(1)) for _ in range(2)]
    dout = rng.standard_normal((37, 12, 12, 16), dtype=np.float32)
    outs, dxs = [], []
    for conv, threads in zip(convs, (1, 2), strict=True):
        conv.chunk_bytes = 20_000
        with chunk_threads(threads):
            outs.append(conv.forward(x, training=True))
            dxs.append(conv.backward(dout))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(dxs[0], dxs[1])
    for key in convs[0].grads:
        np.testing.assert_array_equal(convs[0].grads[key], convs[1].grads[key])


@pytest.mark.parametrize(
    "make",
    [
        lambda: ReLU(),
        lambda: MaxPool2D(2),
        lambda: MaxPool2D(3, stride=2),  # overlapping windows, a row and column in none
        lambda: BatchNorm2D(4),
    ],
    ids=["relu", "maxpool2", "maxpool3s2", "batchnorm"],
)
@pytest.mark.parametrize("training", [True, False])
def test_element_wise_layers_give_the_same_bits_in_chunks_on_threads(make, training, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((13, 7, 7, 4), dtype=np.float32)
    x[0, :2, :2, :] = 0.5  # ties in a pooling window
    whole, pieces = make(), make()
    out = whole.forward(x, training=training)
    dout = rng.standard_normal(out.shape, dtype=np.float32)
    dx = whole.backward(dout)
    monkeypatch.setattr(parallel, "ROW_CHUNK_BYTES", x[0].nbytes)  # one image a chunk
    with parallel.threads(3):
        np.testing.assert_array_equal(pieces.forward(x, training=training), out)
        np.testing.assert_array_equal(pieces.backward(dout), dx)
    for key in whole.grads:
        np.testing.assert_array_equal(pieces.grads[key], whole.grads[key])
    for key in whole.buffers:
        np.testing.assert_array_equal(pieces.buffers[key], whole.buffers[key])


@pytest.mark.parametrize("padding", [0, 1, 2, (0, 1), (2, 1)])
def test_pad_hw_matches_numpy_pad(padding):
    x = np.random.default_rng(0).standard_normal((3, 5, 4, 2))
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    expected = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    np.testing.assert_array_equal(pad_hw(x, padding), expected)
