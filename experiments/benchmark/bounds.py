"""Where a training step's milliseconds go, and which bound each layer meets.

`make bench ARGS=--bounds` sets beside every leaf's time, measured inside the training
steps (layer_times.py), what the leaf could not go below on this machine:
- products: its own matrix products, with the shapes of its batch chunks, on operands
  already laid out, on the same chunk threads with BLAS on one thread each, as training
  runs them: what the BLAS kernel gives at these product shapes;
- memory: the bytes a pass must at least stream (forward: input in, output out;
  backward: the gradient and the input in, the input's gradient out), at the copy
  bandwidth of arrays larger than the cache, measured on the same threads.
The larger of the two is the leaf's floor, and what it takes above it is "rest".

For a convolution it also times the gathering of its patch matrices alone (im2col of
the input, twice, and of the padded output gradient), chunk by chunk. That is not a
floor, and does not add to the products: inside the layer one thread gathers while the
other multiplies, so the layer takes less than the two timed apart, and its rest is
what gathering costs there. A layer without products spends its rest on extra passes
over memory (a batch norm's statistics, its backward's sums) and Python.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cnn import parallel
from cnn.layers import Conv2D, Dense
from cnn.layers.im2col import output_size
from experiments.benchmark.layer_times import LayerTiming
from experiments.benchmark.timing import timed

# The bandwidth probe's arrays: far larger than any last-level cache of these machines.
_PROBE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Product:
    """One matrix product (m, k) @ (k, n); `transposed` when the left factor is a
    transposed view, as the weight gradient's patches.T is."""

    m: int
    k: int
    n: int
    transposed: bool = False

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n


def conv_products(layer: Conv2D, in_shape: tuple[int, ...], input_grad: bool) -> list[Product]:
    """The products one training step of `layer` runs on an input (N, H, W, C), in chunk
    order: forward, then the weight gradient, then (when `input_grad`) the input gradient:
    with stride 1 a convolution of the padded output gradient, else the output gradient
    times the weights, scattered (Conv2D.backward)."""
    n, h, w, c = in_shape
    kh, kw = layer.kernel
    ho = output_size(h, kh, layer.stride, layer.padding)
    wo = output_size(w, kw, layer.stride, layer.padding)
    f, k = layer.out_channels, kh * kw * c
    chunks = layer._chunks(np.empty((n, h, w, c), np.float32), ho, wo)
    rows = [(s.stop - s.start) * ho * wo for s in chunks]
    products = [Product(r, k, f) for r in rows] + [Product(k, r, f, True) for r in rows]
    if input_grad and layer.stride == 1:
        # The input gradient's chunks are cut on the output gradient (N, Ho, Wo, F).
        dchunks = layer._chunks(np.empty((n, ho, wo, f), np.float32), h, w)
        products += [Product((s.stop - s.start) * h * w, kh * kw * f, c) for s in dchunks]
    elif input_grad:
        products += [Product(r, f, k) for r in rows]  # the scatter's chunks are forward's
    return products


def leaf_products(t: LayerTiming) -> list[Product]:
    """The products of one training step of the leaf; none for a layer without any."""
    if isinstance(t.layer, Conv2D):
        return conv_products(t.layer, t.in_shape, t.input_grad)
    if isinstance(t.layer, Dense):
        n, d_out = t.out_shape
        d_in = t.layer.in_features
        grads = [Product(d_in, n, d_out, True)] + ([Product(n, d_out, d_in)] * t.input_grad)
        return [Product(n, d_in, d_out), *grads]
    return []


def streamed_bytes(t: LayerTiming) -> int:
    """The bytes one training step of the leaf must at least read and write."""
    size = np.dtype(np.float32).itemsize
    x, out = int(np.prod(t.in_shape)) * size, int(np.prod(t.out_shape)) * size
    backward = out + x + (x if t.input_grad else 0)  # dout and x in, dx out
    return x + out + backward


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    return statistics.median(timed(run, repeats)) * 1e3


def time_products(products: list[Product], repeats: int) -> float:
    """Median ms of the products, taken in turn on the chunk threads."""
    rng = np.random.default_rng(0)
    shapes = sorted({(p.m, p.k, p.n, p.transposed) for p in products})
    operands = {}
    for m, k, n, transposed in shapes:
        left = rng.standard_normal((k, m) if transposed else (m, k), dtype=np.float32)
        operands[m, k, n, transposed] = (left.T if transposed else left,
                                         rng.standard_normal((k, n), dtype=np.float32))
    outs = [np.empty((p.m, p.n), np.float32) for p in products]

    def one(i: int) -> None:
        a, b = operands[products[i].m, products[i].k, products[i].n, products[i].transposed]
        np.matmul(a, b, out=outs[i])

    return _median_ms(lambda: parallel.map_chunks(one, range(len(products))), repeats)


def time_patches(layer: Conv2D, in_shape: tuple[int, ...], input_grad: bool,
                 repeats: int) -> float:
    """Median ms of gathering a training step's patch matrices, chunk by chunk."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(in_shape, dtype=np.float32)
    n, h, w, _ = in_shape
    kh, kw = layer.kernel
    ho = output_size(h, kh, layer.stride, layer.padding)
    wo = output_size(w, kw, layer.stride, layer.padding)
    chunks = layer._chunks(x, ho, wo)
    jobs = [(layer, x[s]) for s in chunks] * 2  # forward, and the weight gradient again
    if input_grad and layer.stride == 1:
        # As _input_grad_as_convolution: a stride-1, unpadded gather of the padded gradient.
        grad_layer = Conv2D(layer.out_channels, layer.in_channels, layer.kernel,
                            padding=kh - 1 - layer.padding, bias=False)
        dout = rng.standard_normal((n, ho, wo, layer.out_channels), dtype=np.float32)
        jobs += [(grad_layer, dout[s]) for s in layer._chunks(dout, h, w)]
    return _median_ms(lambda: parallel.map_chunks(lambda j: j[0]._patch_rows(j[1]), jobs),
                      repeats)


def copy_bandwidth(repeats: int = 5) -> float:
    """GB/s read plus written by copies of arrays larger than the cache, in chunks of
    cnn.parallel's element-wise size on the chunk threads."""
    src = np.ones(_PROBE_BYTES // 4, np.float32)
    dst = np.empty_like(src)
    step = parallel.ROW_CHUNK_BYTES // 4
    parts = [slice(i, i + step) for i in range(0, src.size, step)]
    ms = _median_ms(lambda: parallel.map_chunks(lambda s: np.copyto(dst[s], src[s]), parts),
                    repeats)
    return 2 * _PROBE_BYTES / (ms / 1e3) / 1e9


@dataclass(frozen=True)
class Floor:
    """One leaf's measured time beside its floors, all in ms of one training step."""

    name: str
    measured_ms: float
    products_ms: float | None  # None: the leaf has no products
    patches_ms: float | None  # timed apart; None: not a convolution
    memory_ms: float

    @property
    def bound(self) -> str:
        """What the leaf's floor is: the product shapes or the memory traffic."""
        if self.products_ms is not None and self.products_ms >= self.memory_ms:
            return "products"
        return "memory"

    @property
    def rest_ms(self) -> float:
        """The time above the leaf's floor, the larger of its products and its memory."""
        return self.measured_ms - max(self.products_ms or 0.0, self.memory_ms)


def layer_floors(layers: list[LayerTiming], repeats: int) -> tuple[list[Floor], float]:
    """Each leaf's floors, and the copy bandwidth (GB/s) the memory floors assume.
    Call it inside the chunk-thread scope the layers were timed in."""
    gbps = copy_bandwidth()
    floors = []
    for t in layers:
        products = leaf_products(t)
        floors.append(Floor(
            t.name, t.forward_ms + t.backward_ms,
            time_products(products, repeats) if products else None,
            time_patches(t.layer, t.in_shape, t.input_grad, repeats)
            if isinstance(t.layer, Conv2D) else None,
            streamed_bytes(t) / (gbps * 1e9) * 1e3))
    return floors, gbps


def floor_lines(floors: list[Floor], gbps: float, step_ms: float) -> list[str]:
    """The table `make bench --bounds` prints, and its sums over the step."""
    def cell(v: float | None) -> str:
        return f"{v:9.2f}" if v is not None else f"{'':>9}"

    lines = [f"where the {step_ms:.1f} ms step goes (copy bandwidth {gbps:.1f} GB/s):",
             f"{'layer':<13} {'measured':>9} {'products':>9} {'memory':>9} {'rest':>9}  "
             f"{'bound':<8} {'patches':>9} (timed apart: inside the layer they overlap its "
             f"products)"]
    for f in floors:
        lines.append(f"{f.name:<13} {f.measured_ms:9.2f} {cell(f.products_ms)} "
                     f"{f.memory_ms:9.2f} {f.rest_ms:9.2f}  {f.bound:<8} "
                     f"{cell(f.patches_ms)}".rstrip())
    total = sum(f.measured_ms for f in floors)
    products = sum(f.products_ms or 0 for f in floors)
    patches = sum(f.patches_ms or 0 for f in floors)
    memory = sum(f.memory_ms for f in floors if f.products_ms is None)
    lines.append(f"{'all layers':<13} {total:9.2f} {products:9.2f} {memory:9.2f} "
                 f"{sum(f.rest_ms for f in floors):9.2f}  {'':<8} {patches:9.2f}")
    lines.append("(the memory sum is over the layers without products)")
    return lines
