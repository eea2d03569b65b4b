"""The contract every layer and block follows: the module protocol.

A layer maps a batch forward and a gradient backward:

    y = layer(x, training)       # forward(x, training), seen by the layer's observers
    dx = layer.backprop(dy)      # backward(dy), likewise; fills layer.grads; None if
                                 # not input_grad

`params` holds the trainable arrays, `grads` their gradients under the same
keys, and `buffers` any state that is not trained (batch-norm running
statistics). Layers never change their own parameters: optimisers do, in
place, so the arrays in `params` stay the same objects for a layer's life.

Layers nest: a block (cnn/layers/block.py) is a layer made of named children,
and a network is a block. One walk serves every caller: `named_modules()`
yields each module with its dotted name ("stage2.block1.conv1"),
`named_parameters()` each array ("stage2.block1.conv1.W"), `named_generators()`
each random generator a layer draws from.

`input_grad` says whether backward must compute the gradient for the input:
a network's first layer has nobody upstream to pass it to, so a network sets it
False there once, and that layer's backward fills `grads` and returns None.

A layer's author writes `forward` and `backward`; whoever runs layers (a block,
a network) calls them through `layer(x, training)` and `layer.backprop(dout)`, so
that an `Observer` attached with `observe` sees every pass: per-layer
statistics, timings and instruments attach there, and no method is replaced.

Inference (`infer`) is the evaluation-mode forward that keeps nothing for
backward; `fold` lets a layer take over the layers after it (a convolution
absorbs the batch norm and ReLU that follow: cnn/layers/conv.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from cnn.initializers import Initializer, get_initializer


class Observer:
    """Watches the passes of the layers it is attached to (Layer.observe); each method is
    told the layer and the pass's arrays, and does nothing unless overridden."""

    def forward_start(self, layer: Layer, x: np.ndarray) -> None:
        pass

    def forward_end(self, layer: Layer, x: np.ndarray, out: np.ndarray) -> None:
        """Called at once, before a block can add into `out` in place."""

    def backward_start(self, layer: Layer, dout: np.ndarray) -> None:
        pass

    def backward_end(self, layer: Layer, dout: np.ndarray, dx: np.ndarray | None) -> None:
        pass


# A layer's inference, possibly fused with the layers after it (Layer.fold).
Inference = Callable[[np.ndarray], np.ndarray]


class Layer:
    """Base class: no parameters, no state, no children. Subclasses override
    forward and backward, and may override `infer`, `fold` and `generators`."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.observers: list[Observer] = []
        self.input_grad = True

    # -- passes -----------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """forward(x, training), told to the observers."""
        for observer in self.observers:
            observer.forward_start(self, x)
        out = self.forward(x, training=training)
        for observer in self.observers:
            observer.forward_end(self, x, out)
        return out

    def backprop(self, dout: np.ndarray) -> np.ndarray | None:
        """backward(dout), told to the observers."""
        for observer in self.observers:
            observer.backward_start(self, dout)
        dx = self.backward(dout)
        for observer in self.observers:
            observer.backward_end(self, dout, dx)
        return dx

    def infer(self, x: np.ndarray) -> np.ndarray:
        """forward(x, training=False) up to rounding, keeping nothing for backward."""
        return self.forward(x, training=False)

    def fold(self, after: Sequence[Layer]) -> tuple[Inference, int]:
        """This layer's inference fused with the first n of the layers `after` it, and n.
        By default none: each layer infers on its own."""
        return self.infer, 0

    def channel_affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(scale, shift) of (C,) if in evaluation mode this layer is the map
        y = scale * x + shift per channel (the last axis), which a linear layer before it
        can fold into its weights, followed by its in_place_activation if it has one (a
        fused batch norm and ReLU); None by default."""
        return None

    def in_place_activation(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """A function that applies this layer's evaluation-mode forward to an array in place
        (and returns it), if it is element-wise, for a layer before it to fuse (for a layer
        with a channel_affine: what follows that map); None by default."""
        return None

    # -- the tree ---------------------------------------------------------------------------
    def children(self) -> Iterator[tuple[str, Layer]]:
        """The named modules directly inside this one; a layer has none."""
        return iter(())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """This module (named `prefix`) and every module inside it, depth first, in order."""
        yield prefix, self
        for name, child in self.children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_leaves(self) -> Iterator[tuple[str, Layer]]:
        """Every module inside with no children of its own: the layers doing the work."""
        return ((name, m) for name, m in self.named_modules() if next(m.children(), None) is None)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """Every trainable array below, "conv1.W", "stage2.block1.bn1.gamma", ..."""
        return self._named("params", prefix)

    def parameters(self) -> list[np.ndarray]:
        return [value for _, value in self.named_parameters()]

    def named_grads(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        return self._named("grads", prefix)

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        return self._named("buffers", prefix)

    def generators(self) -> dict[str, np.random.Generator]:
        """The random generators this layer itself draws from, by name; none by default."""
        return {}

    def named_generators(self) -> Iterator[tuple[str, np.random.Generator]]:
        """Every generator below, "drop1.rng", "stage1.block1.drop.rng", ..."""
        for name, module in self.named_modules():
            for key, generator in module.generators().items():
                yield (f"{name}.{key}" if name else key), generator

    def _named(self, store: str, prefix: str) -> Iterator[tuple[str, np.ndarray]]:
        for name, module in self.named_modules(prefix):
            if next(module.children(), None) is None:
                for key, value in getattr(module, store).items():
                    yield (f"{name}.{key}" if name else key), value

    def observe(self, observer: Observer) -> Callable[[], None]:
        """Tell `observer` of this module's passes from now on; returns the function that
        stops it."""
        self.observers.append(observer)
        return lambda: self.observers.remove(observer)

    # -- dtype ------------------------------------------------------------------------------
    def to(self, dtype: np.dtype | type) -> Layer:
        """Cast parameters and buffers to `dtype` (e.g. float64 for gradient checks)."""
        for store in (self.params, self.buffers):
            for key, value in store.items():
                store[key] = value.astype(dtype)
        self.grads = {}
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class WeightedLayer(Layer):
    """A layer with a weight `W` drawn by an initialiser and an optional bias `b`
    (zero unless the initialiser has a `bias` draw of its own)."""

    use_bias: bool

    @property
    def fans(self) -> tuple[int, int]:
        """(fan_in, fan_out) of `W`, which set the scale of most initialisers."""
        raise NotImplementedError

    def reset_parameters(self, init: str | Initializer, rng: np.random.Generator) -> None:
        draw = get_initializer(init) if isinstance(init, str) else init
        w = self.params["W"]
        w[...] = draw(w.shape, *self.fans, rng)
        if self.use_bias:
            b = self.params["b"]
            draw_bias = getattr(draw, "bias", None)
            b[...] = draw_bias(b.shape, *self.fans, rng) if draw_bias else 0.0


def snapshot_generators(module: Layer) -> Callable[[], None]:
    """The function that puts every generator of the module's layers back in the state it
    has now: measuring a network (a dropout mask drawn in a probe) must not change the
    draws its training makes next."""
    generators = [g for _, g in module.named_generators()]
    states = [g.bit_generator.state for g in generators]

    def restore() -> None:
        for g, state in zip(generators, states, strict=True):
            g.bit_generator.state = state

    return restore


def infer_in_order(layers: Sequence[Layer], x: np.ndarray) -> np.ndarray:
    """Evaluation-mode output of `layers` applied in order, each folding in the layers
    after it that it can (Layer.fold); nothing is cached."""
    i = 0
    while i < len(layers):
        run, absorbed = layers[i].fold(layers[i + 1:])
        x = run(x)
        i += 1 + absorbed
    return x
