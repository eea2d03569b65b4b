"""Optimisers. Each owns its state (momentum buffers, moment estimates) keyed by
parameter name, and updates the parameter arrays in place, so the network's
layers see the new values without being told."""

from __future__ import annotations

import numpy as np

from cnn.registry import Registry

# Each optimiser's constructor arguments are its config keys (experiments.config).
OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimiser")


class Optimizer:
    """Base class: `lr` may be changed between steps (schedules do this)."""

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        if not 0 <= lr < float("inf"):  # also refuses NaN, which fails every comparison
            raise ValueError(f"learning rate must be >= 0 and finite, got {lr}")
        if not 0 <= weight_decay < float("inf"):
            raise ValueError(f"weight decay must be >= 0 and finite, got {weight_decay}")
        self.lr, self.weight_decay = lr, weight_decay
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.steps = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.steps += 1
        for key, p in params.items():
            self._update(key, p, grads[key], self.state.setdefault(key, {}))

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat arrays, e.g. "conv1.W/velocity", plus the step count: saveable with np.savez."""
        flat = {f"{k}/{name}": v.copy() for k, s in self.state.items() for name, v in s.items()}
        flat["steps"] = np.array(self.steps)
        return flat

    def load_state_dict(self, flat: dict[str, np.ndarray]) -> None:
        self.steps = int(flat["steps"])
        self.state = {}
        for full, value in flat.items():
            if full != "steps":
                key, _, name = full.rpartition("/")
                self.state.setdefault(key, {})[name] = np.array(value)


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """SGD with momentum, optional Nesterov, and L2 weight decay (added to the gradient).

    v = momentum * v + g;  p -= lr * (g + momentum * v) with Nesterov, else lr * v.
    """

    def __init__(
        self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
    ) -> None:
        super().__init__(lr, weight_decay)
        _check_momentum(momentum)
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov = momentum, nesterov

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            v = state.setdefault("velocity", np.zeros_like(p))
            v *= self.momentum
            v += g
            g = g + self.momentum * v if self.nesterov else v
        p -= self.lr * g


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam with bias-corrected moments; weight decay is L2, added to the gradient.

    beta1 and beta2 are the decay rates of the first and second moment estimates
    (PyTorch's `betas`)."""

    decoupled = False

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {beta1} and {beta2}")
        _check_eps(eps)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        b1, b2 = self.beta1, self.beta2
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * p
        m = state.setdefault("m", np.zeros_like(p))
        v = state.setdefault("v", np.zeros_like(p))
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        m_hat = m / (1 - b1**self.steps)
        v_hat = v / (1 - b2**self.steps)
        if self.weight_decay and self.decoupled:
            p -= self.lr * self.weight_decay * p
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay: p -= lr * wd * p, apart from the adaptive step."""

    decoupled = True

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay)


@OPTIMIZERS.register("rmsprop")
class RMSprop(Optimizer):
    """Divides the step by a running RMS of the gradient: v = a*v + (1-a)*g^2."""

    def __init__(
        self,
        lr: float = 1e-3,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        if not 0 <= alpha < 1:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        _check_eps(eps)
        _check_momentum(momentum)
        self.alpha, self.eps, self.momentum = alpha, eps, momentum

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        sq = state.setdefault("square_avg", np.zeros_like(p))
        sq *= self.alpha
        sq += (1 - self.alpha) * g * g
        step = g / (np.sqrt(sq) + self.eps)
        if self.momentum:
            buf = state.setdefault("momentum", np.zeros_like(p))
            buf *= self.momentum
            buf += step
            step = buf
        p -= self.lr * step


def _check_momentum(momentum: float) -> None:
    # Written as a range so that NaN, which fails every comparison, is refused too; at 1
    # or above the velocity never decays.
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")


def _check_eps(eps: float) -> None:
    if not 0 < eps < float("inf"):
        raise ValueError(f"eps must be > 0 and finite, got {eps}")


def make_optimizer(name: str, **kwargs) -> Optimizer:
    """Build a registered optimiser by name (sgd, adam, adamw, rmsprop, ...) with its arguments."""
    return OPTIMIZERS[name.lower()](**kwargs)
