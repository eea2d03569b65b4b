"""Optimisers follow their update rules; schedules have the promised shapes."""

import numpy as np
import pytest

from cnn.optim import SGD, Adam, AdamW, RMSprop, make_optimizer
from cnn.schedules import Constant, Cosine, OneCycle, StepDecay, Warmup, make_schedule


def run(opt, grads_seq, p0):
    p = {"w": p0.copy()}
    for g in grads_seq:
        opt.step(p, {"w": g})
    return p["w"]


GRADS = [np.array([1.0, -2.0]), np.array([0.5, 0.5]), np.array([-1.0, 3.0])]
P0 = np.array([0.3, -0.7])


def test_plain_sgd():
    expected = P0 - 0.1 * sum(GRADS)
    np.testing.assert_allclose(run(SGD(0.1), GRADS, P0), expected)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_and_weight_decay_by_hand(nesterov):
    lr, mu, wd = 0.1, 0.9, 0.01
    p, v = P0.copy(), np.zeros(2)
    for g in GRADS:
        g = g + wd * p
        v = mu * v + g
        p = p - lr * (g + mu * v if nesterov else v)
    got = run(SGD(lr, momentum=mu, nesterov=nesterov, weight_decay=wd), GRADS, P0)
    np.testing.assert_allclose(got, p)


def test_adam_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p, m, v = P0.copy(), np.zeros(2), np.zeros(2)
    for t, g in enumerate(GRADS, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(run(Adam(lr), GRADS, P0), p)


def test_adamw_decay_is_decoupled_from_the_gradient():
    # With zero gradients Adam's L2 decay still moves through the moments, AdamW's shrinks p.
    zeros = [np.zeros(2)] * 3
    np.testing.assert_allclose(run(AdamW(0.1, weight_decay=0.1), zeros, P0), P0 * (1 - 0.01) ** 3)
    assert not np.allclose(run(Adam(0.1, weight_decay=0.1), zeros, P0), P0 * (1 - 0.01) ** 3)


def test_rmsprop_by_hand():
    lr, a, eps = 0.01, 0.99, 1e-8
    p, s = P0.copy(), np.zeros(2)
    for g in GRADS:
        s = a * s + (1 - a) * g * g
        p = p - lr * g / (np.sqrt(s) + eps)
    np.testing.assert_allclose(run(RMSprop(lr), GRADS, P0), p)


def test_optimisers_update_in_place_and_keep_float32():
    w = np.ones(3, dtype=np.float32)
    for name in ["sgd", "adam", "adamw", "rmsprop"]:
        opt = make_optimizer(name, lr=0.1)
        opt.step({"w": w}, {"w": np.ones(3, dtype=np.float32)})
        assert w.dtype == np.float32
    assert (w < 1).all()


def test_optimizer_state_round_trips():
    opt = SGD(0.1, momentum=0.9)
    run(opt, GRADS[:2], P0)
    clone = SGD(0.1, momentum=0.9)
    clone.load_state_dict(opt.state_dict())
    a, b = {"w": P0.copy()}, {"w": P0.copy()}
    opt.step(a, {"w": GRADS[2]})
    clone.step(b, {"w": GRADS[2]})
    np.testing.assert_array_equal(a["w"], b["w"])


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="'sgdd'.*sgd"):
        make_optimizer("sgdd", lr=0.1)


def test_constant_and_step():
    assert [Constant(0.1)(s) for s in (0, 99)] == [0.1, 0.1]
    sched = StepDecay(1.0, steps_per_epoch=5, step_epochs=2, gamma=0.5)
    assert [sched(s) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_cosine_runs_from_lr_to_min():
    sched = Cosine(1.0, total_steps=100, min_lr=0.1)
    assert sched(0) == pytest.approx(1.0)
    assert sched(50) == pytest.approx(0.55)
    assert sched(100) == pytest.approx(0.1)


def test_one_cycle_rises_to_the_peak_at_the_warmup_fraction_then_falls():
    sched = OneCycle(0.05, total_steps=1000, pct_start=0.25)
    lrs = np.array([sched(s) for s in range(1000)])
    assert lrs[0] == pytest.approx(0.05 / 25)
    assert lrs.argmax() in (248, 249) and lrs.max() == pytest.approx(0.05)
    assert (np.diff(lrs[:249]) > 0).all() and (np.diff(lrs[250:]) < 0).all()
    assert lrs[-1] == pytest.approx(0.05 / 25 / 1e4)


def test_warmup_ramps_linearly_into_any_schedule():
    sched = Warmup(Cosine(1.0, 100), warmup_steps=4)
    assert [sched(s) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert sched(4) == pytest.approx(1.0)
    assert make_schedule("cosine", 1.0, 104, warmup_steps=4)(54) == pytest.approx(0.5)


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="'cosin'"):
        make_schedule("cosin", 0.1, 10)


def test_one_cycle_moves_momentum_opposite_to_the_rate():
    sched = OneCycle(0.05, total_steps=1000, pct_start=0.25, momentum_range=(0.85, 0.95))
    moms = np.array([sched.momentum(s) for s in range(1000)])
    lrs = np.array([sched(s) for s in range(1000)])
    assert moms[0] == pytest.approx(0.95) and moms[-1] == pytest.approx(0.95)
    assert moms.argmin() == lrs.argmax() and moms.min() == pytest.approx(0.85)
    assert OneCycle(0.05, 1000).momentum(10) is None  # without a range the optimiser's own stays


def test_fit_applies_the_schedule_momentum_to_the_optimizer():
    from cnn.layers import Dense
    from cnn.losses import SoftmaxCrossEntropy
    from cnn.network import Sequential
    from cnn.training import fit

    seen = []

    class Spy(SGD):
        def step(self, params, grads):
            seen.append(self.momentum)
            super().step(params, grads)

    sched = Warmup(OneCycle(0.1, 10, 0.3, momentum_range=(0.8, 0.9)), warmup_steps=2)
    batch = (np.ones((2, 3)), np.array([0, 1]))
    fit(
        Sequential([Dense(3, 2)]), SoftmaxCrossEntropy(), Spy(0.1, momentum=0.5), sched, [batch], 12
    )
    assert seen[:3] == pytest.approx([0.9, 0.9, 0.9]) and min(seen) == pytest.approx(0.8)
