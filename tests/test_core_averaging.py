"""The moving average of the weights (cnn.averaging) and test-time flips and shifts
(cnn.training)."""

import numpy as np
import pytest

from cnn.averaging import WeightAverage
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD
from cnn.training import evaluate, shifted_views, train_step


def _tiny_resnet(seed=0):
    return build_model("resnet", input_shape=(8, 8, 3), depth=8, widths=[4, 4, 8], seed=seed)


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 8, 8, 3)).astype(np.float32), rng.integers(0, 10, n)


def test_average_follows_the_warmed_up_recurrence_for_params_and_buffers():
    net, (x, y) = _tiny_resnet(), _data()
    average = WeightAverage(net, decay=0.9)
    expected = net.state_dict()
    optimizer, loss_fn = SGD(0.1, momentum=0.9), SoftmaxCrossEntropy()
    for t in range(6):
        train_step(net, loss_fn, optimizer, x, y)
        d = min(0.9, (1 + t) / (10 + t))
        assert average.rate() == pytest.approx(d)
        average.on_batch_end(t + 1, 0.0, 0.0)
        for key, value in net.state_dict().items():
            expected[key] = d * expected[key] + (1 - d) * value
    assert set(average.shadow) == set(net.params) | set(net.buffers)
    assert "stage1.block1.bn1.running_mean" in average.shadow
    for key, value in expected.items():
        np.testing.assert_allclose(average.shadow[key], value, rtol=1e-5, atol=1e-6)
    # Trained weights moved away from the average.
    assert not np.allclose(average.shadow["dense1.W"], net.params["dense1.W"])


def test_swapped_in_evaluates_the_average_and_puts_the_trained_weights_back():
    net, (x, y) = _tiny_resnet(), _data()
    average = WeightAverage(net, decay=0.5)
    train_step(net, SoftmaxCrossEntropy(), SGD(0.5), x, y)
    trained = net.state_dict()
    with average.swapped_in():
        inside = net.forward(x, training=False)
    after = net.forward(x, training=False)
    fresh = _tiny_resnet()  # the average holds only the initial weights (no update yet)
    np.testing.assert_allclose(inside, fresh.forward(x, training=False), rtol=1e-5, atol=1e-6)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, trained[key])
    assert not np.allclose(inside, after)


def test_state_round_trips_and_bad_decay_or_state_is_refused():
    net = _tiny_resnet()
    average = WeightAverage(net, decay=0.99)
    average.update()
    other = WeightAverage(_tiny_resnet(seed=1), decay=0.99)
    other.load_state_dict(average.state_dict())
    assert other.updates == 1
    for key, value in average.shadow.items():
        np.testing.assert_array_equal(other.shadow[key], value)
    for decay in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="decay must be in"):
            WeightAverage(net, decay)
    state = average.state_dict()
    del state["dense1.W"]
    with pytest.raises(ValueError, match="dense1.W"):
        other.load_state_dict(state)


def test_flip_averages_the_logits_of_each_image_and_its_mirror():
    net, (x, y) = _tiny_resnet(), _data(12)
    loss_fn = SoftmaxCrossEntropy()
    logits = 0.5 * (net.forward(x, training=False)
                    + net.forward(x[:, :, ::-1].copy(), training=False))
    flipped = evaluate(net, loss_fn, [(x[:5], y[:5]), (x[5:], y[5:])], flip=True)
    np.testing.assert_array_equal(flipped.predictions, logits.argmax(axis=1))
    assert flipped.loss == pytest.approx(loss_fn.forward(logits, y), rel=1e-5)
    # Mirror-symmetric images: flipping changes nothing.
    symmetric = np.concatenate([x[:, :, :4], x[:, :, 3::-1]], axis=2)
    plain, both = (evaluate(net, loss_fn, [(symmetric, y)], flip=f) for f in (False, True))
    assert both.loss == pytest.approx(plain.loss, rel=1e-5)
    # Images that are not symmetric: the flip changes the loss.
    assert flipped.loss != pytest.approx(evaluate(net, loss_fn, [(x, y)]).loss, rel=1e-6)


def _shifted_naive(x, dy, dx):
    """x moved dy pixels down and dx right, pixel by pixel; what comes in from beyond an
    edge is the mirror image about that edge's pixel (NumPy's "reflect")."""
    def reflect(i, size):
        i = abs(i)
        return 2 * (size - 1) - i if i >= size else i

    out = np.empty_like(x)
    _, height, width, _ = x.shape
    for i in range(height):
        for j in range(width):
            out[:, i, j] = x[:, reflect(i - dy, height), reflect(j - dx, width)]
    return out


@pytest.mark.parametrize("n", [1, 2, 7])
def test_shifted_views_match_a_pixel_loop(n):
    x = np.random.default_rng(n).standard_normal((3, 8, 8, 2)).astype(np.float32)
    down_right, up_left = shifted_views(x, n)
    np.testing.assert_array_equal(down_right, _shifted_naive(x, n, n))
    np.testing.assert_array_equal(up_left, _shifted_naive(x, -n, -n))
    assert down_right.flags.c_contiguous and up_left.flags.c_contiguous
    for bad in (0, 8, -1):
        with pytest.raises(ValueError, match=f"a shift of {bad} pixels"):
            shifted_views(x, bad)


@pytest.mark.parametrize("flip", [False, True])
def test_translate_weighs_the_image_half_and_each_shift_a_quarter(flip):
    net, (x, y) = _tiny_resnet(), _data(12)
    loss_fn = SoftmaxCrossEntropy()

    def logits_of(images):
        plain = net.forward(images, training=False)
        if not flip:
            return plain
        return 0.5 * (plain + net.forward(images[:, :, ::-1].copy(), training=False))

    logits = (0.5 * logits_of(x) + 0.25 * logits_of(_shifted_naive(x, 2, 2))
              + 0.25 * logits_of(_shifted_naive(x, -2, -2)))
    shifted = evaluate(net, loss_fn, [(x[:5], y[:5]), (x[5:], y[5:])], flip=flip, translate=2)
    np.testing.assert_array_equal(shifted.predictions, logits.argmax(axis=1))
    assert shifted.loss == pytest.approx(loss_fn.forward(logits, y), rel=1e-5)
    # A constant image looks the same shifted: the views change nothing.
    flat = np.broadcast_to(x[:, :1, :1], x.shape).copy()
    plain, views = (evaluate(net, loss_fn, [(flat, y)], flip=flip, translate=t) for t in (0, 2))
    assert views.loss == pytest.approx(plain.loss, rel=1e-5)
    assert shifted.loss != pytest.approx(
        evaluate(net, loss_fn, [(x, y)], flip=flip).loss, rel=1e-6)
