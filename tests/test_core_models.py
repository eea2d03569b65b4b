"""The model families: today's networks unchanged, new families built from typed knobs."""

import hashlib

import numpy as np
import pytest

from cnn.models import build_model


def digest(net) -> str:
    """sha256 of every parameter and buffer, with its name and shape, in the network's order."""
    h = hashlib.sha256()
    for key, value in net.state_dict().items():
        h.update(key.encode())
        h.update(str(value.shape).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


# Computed from cnn/models.py before the families gained knobs (commit cd477e3): weights
# logged by earlier runs must still load, and the same seed must draw the same weights.
PINNED = [
    ({"name": "seed", "seed": 3},
     "0fb722ac37c2b787efce3e173741809789668b54223a95fc335b6f7f8e299af6"),
    ({"name": "vgg", "seed": 3},
     "0e9bdffb9850791cbc99a2e4a3d7afd21aec155bf8aebbe5675518a580d55578"),
    ({"name": "seed", "seed": 3, "init": "pytorch"},  # computed at commit 3206601
     "fa98d8016c5ab76e265dd2450280ca12e9c2301f8bf9711548144e273cc68cf5"),
    ({"name": "vgg", "seed": 5, "input_shape": (16, 16, 3), "num_classes": 4,
      "init": "orthogonal", "dtype": np.float64},
     "4e6f6ed7b72186dfb6f4ba535dd7a09e478986a9ee41573ac2881cba0b730c73"),
]


@pytest.mark.parametrize("kwargs,expected", PINNED, ids=lambda v: str(v)[:40])
def test_seed_and_vgg_draw_the_same_weights_as_before(kwargs, expected):
    kwargs = dict(kwargs)
    assert digest(build_model(kwargs.pop("name"), **kwargs)) == expected


def test_seed_and_vgg_keep_their_layer_names():
    assert build_model("seed").names == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten1", "dense1"]
    vgg = build_model("vgg")
    assert vgg.names[:7] == ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "pool1"]
    assert vgg.names[-3:] == ["pool3", "flatten1", "dense1"]
    assert [p.shape for p in vgg.params.values()][-2:] == [(2048, 10), (10,)]


# -- knobs and the registry ---------------------------------------------------------------------

def test_every_family_is_registered_with_typed_knobs():
    from cnn.models import ARCHITECTURES, architecture_knobs

    assert set(ARCHITECTURES) == {"seed", "vgg", "plain", "resnet", "custom"}
    assert architecture_knobs("seed") == {}
    assert architecture_knobs("vgg") == {
        "widths": (list[int], [32, 64, 128]), "norm": (str, "batch"), "dropout": (float, 0.0)}
    resnet = architecture_knobs("resnet")
    assert resnet == architecture_knobs("plain")
    assert resnet["depth"] == (int, 20) and resnet["widths"] == (list[int], [16, 32, 64])
    assert resnet["activation"] == (str, "relu")
    kind, default = architecture_knobs("custom")["layers"]
    assert kind == list[dict] and default[0] == {"type": "conv", "out": 16}
    default.clear()  # a copy: the family's default is untouched
    assert architecture_knobs("custom")["layers"][1][0] == {"type": "conv", "out": 16}


@pytest.mark.parametrize("signature", [
    "def f(input_shape, num_classes, init, rng, *, depth=3): pass",  # no annotation
    "def f(input_shape, num_classes, init, rng, *, depth: int): pass",  # no default
    "def f(input_shape, num_classes, init, rng, *, depth: tuple = (1,)): pass",  # odd type
    "def f(input_shape, num_classes, init, *, depth: int = 3): pass",  # no rng
])
def test_a_family_that_breaks_the_convention_is_refused(signature):
    from cnn.models import ARCHITECTURES, architecture

    scope: dict = {}
    exec(signature, scope)
    with pytest.raises(TypeError):
        architecture("broken")(scope["f"])
    assert "broken" not in ARCHITECTURES


@pytest.mark.parametrize("name,knobs,message", [
    ("resnet", {"dept": 8}, "no knob 'dept'; its knobs: depth, widths, norm, activation"),
    ("seed", {"widths": [8]}, "no knob 'widths'; its knobs: none"),
    ("resnet", {"depth": "8"}, "knob 'depth' must be int, got '8'"),
    ("resnet", {"depth": True}, "knob 'depth' must be int"),
    ("vgg", {"widths": [8, 1.5]}, r"knob 'widths' must be list\[int\]"),
    ("vgg", {"dropout": "0.1"}, "knob 'dropout' must be float"),
    ("custom", {"layers": ["relu"]}, r"knob 'layers' must be list\[dict\]"),
    ("resnet", {"depth": 10}, r"resnet depth must be 6n\+2 with 3 stages \(8, 14, 20, 26, 32, "
                              r"\.\.\.\), got 10"),
    ("plain", {"depth": 2}, "plain depth must be 6n.2 with 3 stages .*, got 2"),
    ("resnet", {"depth": 8, "widths": [4, 8]}, r"4n\+2 with 2 stages \(6, 10"),
    ("resnet", {"norm": "layer"}, "resnet norm must be one of batch, none, got 'layer'"),
    ("plain", {"activation": "gelu"}, "plain activation must be one of relu, leaky_relu"),
    ("vgg", {"norm": "group"}, "vgg norm must be one of batch, none, got 'group'"),
    ("vgg", {"dropout": 1.0}, r"dropout probability must be in \[0, 1\)"),
    ("resnets", {}, "unknown model 'resnets'; choose one of seed, vgg"),
])
def test_bad_knobs_are_named(name, knobs, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, **knobs)


def test_knobs_accept_config_like_values():
    """Sequences other than lists (a config's list, a tuple) and ints for floats."""
    net = build_model("vgg", widths=(8, 16), dropout=0, input_shape=(8, 8, 3))
    assert net.params["dense1.W"].shape == (2 * 2 * 16, 10)
    assert build_model("resnet", depth=np.int64(8), widths=[4, 4, 4]).names[3] == "stage1.block1"


# -- vgg knobs -------------------------------------------------------------------------------

def test_vgg_knobs():
    net = build_model("vgg", widths=[8, 16], norm="none", dropout=0.25, input_shape=(8, 8, 3))
    assert net.names == ["conv1", "relu1", "conv2", "relu2", "pool1", "conv3", "relu3", "conv4",
                         "relu4", "pool2", "flatten1", "dropout1", "dense1"]
    assert "conv1.b" in net.params and not net.buffers
    assert net.layers[-2].p == 0.25
    # Dropout draws from a generator of its own: the weights are those without it.
    same = build_model("vgg", widths=[8, 16], norm="none", input_shape=(8, 8, 3))
    assert digest(same) == digest(net)


# -- resnet and plain --------------------------------------------------------------------------

@pytest.mark.parametrize("depth,blocks", [(8, 1), (14, 2), (20, 3), (32, 5)])
def test_resnet_depth_sets_the_blocks_per_stage(depth, blocks):
    net = build_model("resnet", depth=depth, widths=[2, 2, 4], input_shape=(8, 8, 3))
    names = [n for n in net.names if n.startswith("stage")]
    assert names == [f"stage{s}.block{b}" for s in (1, 2, 3) for b in range(1, blocks + 1)]
    convs = [n for n, _ in net.named_leaves() if n.endswith(("conv1", "conv2"))]
    assert len(convs) + 1 == depth  # the stem's conv1 is among them; the dense makes depth
    assert net.forward(np.zeros((2, 8, 8, 3), np.float32)).shape == (2, 10)


def test_resnet_layout():
    net = build_model("resnet", depth=8)
    assert net.names == ["conv1", "bn1", "relu1", "stage1.block1", "stage2.block1",
                         "stage3.block1", "gap1", "dense1"]
    blocks = net.layers[3:6]
    assert [(b.in_channels, b.out_channels, b.stride, b.shortcut) for b in blocks] == [
        (16, 16, 1, "identity"), (16, 32, 2, "projection"), (32, 64, 2, "projection")]
    assert net.params["dense1.W"].shape == (64, 10)
    assert "conv1.b" not in net.params
    leaky = build_model("resnet", depth=8, norm="none", activation="leaky_relu", dropout=0.1)
    assert leaky.names[:2] == ["conv1", "leakyrelu1"] and "conv1.b" in leaky.params
    assert leaky.names[-2:] == ["dropout1", "dense1"] and not leaky.buffers
    assert "stage2.block1.conv1.b" in leaky.params


def test_plain_is_resnet_without_shortcuts():
    res, plain = build_model("resnet", depth=14), build_model("plain", depth=14)
    assert res.names == plain.names
    extra = res.params.keys() - plain.params.keys()
    assert plain.params.keys() <= res.params.keys()
    assert extra and all(".shortcut." in k for k in extra)
    projections = sum(res.params[k].size for k in extra)
    assert res.num_params() - plain.num_params() == projections == 16 * 32 + 32 * 64 + 2 * (32 + 64)
    assert {b.shortcut for b in plain.layers if hasattr(b, "shortcut")} == {"none"}
    assert build_model("resnet", depth=20).num_params() == 272_474  # the paper's 0.27M


def test_dtypes():
    net = build_model("resnet", depth=8, widths=[4, 4, 8])
    assert {v.dtype for v in net.state_dict().values()} == {np.dtype(np.float32)}
    x = np.zeros((2, 8, 8, 3), np.float32)
    assert net.forward(x, training=True).dtype == np.float32
    net64 = build_model("resnet", depth=8, widths=[4, 4, 8], dtype=np.float64)
    assert {v.dtype for v in net64.state_dict().values()} == {np.dtype(np.float64)}
    assert net64.forward(x.astype(np.float64), training=True).dtype == np.float64
    np.testing.assert_allclose(net64.params["stage2.block1.conv1.W"],
                               net.params["stage2.block1.conv1.W"], rtol=1e-6)


def test_reinitialize_reaches_the_layers_inside_blocks():
    from cnn.models import reinitialize

    net = build_model("resnet", depth=8, widths=[4, 4, 8])
    before = net.state_dict()
    reinitialize(net, "xavier", np.random.default_rng(1))
    assert not np.array_equal(before["stage2.block1.shortcut.conv.W"],
                              net.params["stage2.block1.shortcut.conv.W"])


# -- whole networks: gradients, weights on disk, checkpoints -----------------------------------

SMALL = {"input_shape": (6, 6, 3), "num_classes": 3, "dtype": np.float64}
WHOLE = {
    "resnet": {"depth": 8, "widths": [2, 3, 4]},
    "plain": {"depth": 8, "widths": [2, 3, 4]},
    "resnet_none_leaky": {"depth": 8, "widths": [2, 3, 4], "norm": "none",
                          "activation": "leaky_relu"},
    # No biases before batch norm: in training its mean cancels them, so their gradient is
    # zero and only rounding is left to compare.
    "custom": {"layers": [{"type": "conv", "out": 3, "bias": False}, {"type": "batchnorm"},
                          {"type": "relu"}, {"type": "residual", "out": 4, "stride": 2},
                          {"type": "residual"}, {"type": "global_avgpool"},
                          {"type": "dense", "out": 5, "bias": False}, {"type": "batchnorm"},
                          {"type": "relu"}]},
}


@pytest.mark.parametrize("case", list(WHOLE))
def test_whole_network_gradients(case):
    from cnn.gradcheck import check_network

    name = case.split("_")[0]
    net = build_model(name, seed=1, **SMALL, **WHOLE[case])
    rng = np.random.default_rng(2)
    for key, value in net.params.items():  # batch norms that are not the identity
        if key.endswith(("gamma", "beta")):
            value[...] = rng.uniform(0.5, 1.5, value.shape) if key.endswith("gamma") else \
                rng.standard_normal(value.shape)
    x, y = rng.standard_normal((4, 6, 6, 3)), rng.integers(0, 3, 4)
    errors = check_network(net, x, y, max_checks=5)
    assert errors.keys() == {"input", *net.params}
    assert max(errors.values()) < 1e-6, errors


def test_resnet_weights_save_and_load(tmp_path):
    net = build_model("resnet", depth=8, widths=[4, 4, 8], seed=1)
    net.forward(np.random.default_rng(0).standard_normal((4, 8, 8, 3)).astype(np.float32),
                training=True)  # running statistics away from their start
    net.save(tmp_path / "w.npz")
    other = build_model("resnet", depth=8, widths=[4, 4, 8], seed=2)
    other.load(tmp_path / "w.npz")
    assert digest(other) == digest(net)
    assert "stage2.block1.shortcut.bn.running_mean" in net.buffers
    # A plain network's weights lack the projections.
    plain = build_model("plain", depth=8, widths=[4, 4, 8])
    plain.save(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="missing .*'stage2.block1.shortcut.bn.beta'"):
        other.load(tmp_path / "plain.npz")


def test_resnet_checkpoint_resumes_bit_for_bit(tmp_path):
    """2 epochs + checkpoint + 2 more == 4 uninterrupted, with dropout's generator saved."""
    from cnn import checkpoint
    from cnn.losses import SoftmaxCrossEntropy
    from cnn.optim import SGD
    from cnn.schedules import make_schedule
    from cnn.training import fit

    data = np.random.default_rng(9)
    x, y = data.standard_normal((24, 8, 8, 3)).astype(np.float32), data.integers(0, 3, 24)

    def run():
        net = build_model("resnet", depth=8, widths=[2, 4, 4], dropout=0.2, num_classes=3, seed=4)
        shuffle = np.random.default_rng(5)
        batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 24, 8)]
        opt = SGD(0.05, momentum=0.9)
        return net, opt, make_schedule("cosine", 0.05, 12), batches, {"shuffle": shuffle}

    net, opt, schedule, batches, gens = run()
    full = fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 4)
    expected = net.state_dict()

    net, opt, schedule, batches, gens = run()
    first = fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 2)
    path = checkpoint.save(tmp_path / "ck.npz", checkpoint.capture(net, opt, gens, 2, 6))
    assert "layer:dropout1" in checkpoint.load(path).rng
    net, opt, schedule, batches, gens = run()
    checkpoint.restore(checkpoint.load(path), net, opt, gens)
    rest = fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 4, start_epoch=3)
    assert [h["train_loss"] for h in first + rest] == [h["train_loss"] for h in full]
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
