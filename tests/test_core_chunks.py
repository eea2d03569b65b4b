"""Layers in chunks, on threads: the chunking and the threads never change a result."""

import time

import numpy as np
import pytest

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


@pytest.mark.parametrize(("stride", "padding"), [(1, 1), (2, 1), (1, 0)])
def test_conv_gives_the_same_numbers_in_one_chunk_or_many_on_threads(stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 9, 9, 3))
    whole = Conv2D(3, 4, 3, stride=stride, padding=padding, rng=np.random.default_rng(1),
                   dtype=np.float64)
    pieces = Conv2D(3, 4, 3, stride=stride, padding=padding, rng=np.random.default_rng(1),
                    dtype=np.float64)
    pieces.chunk_bytes = 1  # one image per chunk, on three threads below
    out = whole.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = whole.backward(dout)
    with parallel.threads(3):
        np.testing.assert_array_equal(pieces.forward(x, training=True), out)
        np.testing.assert_allclose(pieces.backward(dout), dx, rtol=1e-12, atol=1e-12)
    for key in whole.grads:
        np.testing.assert_allclose(pieces.grads[key], whole.grads[key], rtol=1e-12, atol=1e-12)


def test_conv_chunks_on_threads_are_bit_identical_to_the_same_chunks_in_turn():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 12, 12, 8), dtype=np.float32)
    convs = [Conv2D(8, 16, 3, padding=1, rng=np.random.default_rng(1)) for _ in range(2)]
    dout = rng.standard_normal((37, 12, 12, 16), dtype=np.float32)
    outs, dxs = [], []
    for conv, threads in zip(convs, (1, 2), strict=True):
        conv.chunk_bytes = 20_000
        with parallel.threads(threads):
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
