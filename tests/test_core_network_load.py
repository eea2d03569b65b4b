"""Sequential.load / load_state_dict: a bad weights file changes nothing and names itself."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnn.models import build_model
from cnn.network import Sequential, WeightsMismatchError


def _net() -> Sequential:
    return build_model("seed", seed=1)


def _saved_with(path: Path, net: Sequential, **overrides) -> Path:
    """The net's own weights with some entries replaced; the last key comes last in the file."""
    state = net.state_dict()
    for key in overrides:
        state.pop(key)
    np.savez(path, **state, **overrides)
    return path


def _assert_unchanged(net: Sequential, before: dict[str, np.ndarray]) -> None:
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(np.array(["a", "b"]), id="str"),
        pytest.param(np.array([b"1.0", b"2.0"]), id="bytes"),
        pytest.param(np.array([1 + 2j, 3j]), id="complex"),
        pytest.param(np.array([True, False]), id="bool"),
    ],
)
def test_non_numeric_last_array_leaves_every_layer_untouched(tmp_path, bad):
    source = _net()
    last = list(source.state_dict())[-1]
    shape = source.state_dict()[last].shape
    path = _saved_with(tmp_path / "w.npz", source, **{last: np.resize(bad, shape)})
    target = build_model("seed", seed=2)
    before = target.state_dict()
    with pytest.raises(WeightsMismatchError) as excinfo:
        target.load(path)
    message = str(excinfo.value)
    assert str(path) in message and repr(last) in message and str(bad.dtype) in message
    _assert_unchanged(target, before)


def test_float64_file_loads_into_a_float32_net(tmp_path):
    source = build_model("seed", seed=1).to(np.float64)
    source.save(tmp_path / "w.npz")
    target = _net()
    target.load(tmp_path / "w.npz")
    assert target.dtype == np.float32
    for key, value in source.state_dict().items():
        np.testing.assert_allclose(target.state_dict()[key], value, rtol=1e-6)


def test_values_too_large_for_the_network_dtype_are_refused(tmp_path):
    source = _net().to(np.float64)
    last = list(source.state_dict())[-1]
    huge = np.full(source.state_dict()[last].shape, 1e300)
    path = _saved_with(tmp_path / "w.npz", source, **{last: huge})
    target = _net()
    before = target.state_dict()
    with pytest.raises(WeightsMismatchError, match=f"{last}.*float32"):
        target.load(path)
    _assert_unchanged(target, before)


def test_object_array_is_refused_naming_file_and_key(tmp_path):
    source = _net()
    last = list(source.state_dict())[-1]
    path = _saved_with(tmp_path / "w.npz", source,
                       **{last: np.array([object()], dtype=object)})
    target = _net()
    before = target.state_dict()
    with pytest.raises(WeightsMismatchError, match="pickle") as excinfo:
        target.load(path)
    assert str(path) in str(excinfo.value) and repr(last) in str(excinfo.value)
    _assert_unchanged(target, before)


def _truncated(path: Path) -> bytes:
    content = path.read_bytes()
    return content[: len(content) * 2 // 3]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: b"", id="empty"),
        pytest.param(_truncated, id="truncated"),
        pytest.param(lambda p: p.read_bytes()[:-30], id="missing-its-tail"),
        pytest.param(lambda p: b"not weights at all\n" * 10, id="garbage"),
    ],
)
def test_damaged_file_is_named(tmp_path, damage):
    path = tmp_path / "w.npz"
    _net().save(path)
    path.write_bytes(damage(path))
    target = build_model("seed", seed=2)
    before = target.state_dict()
    with pytest.raises(WeightsMismatchError, match=str(path)):
        target.load(path)
    _assert_unchanged(target, before)


def test_corrupt_member_is_named(tmp_path):
    path = tmp_path / "w.npz"
    _net().save(path)
    content = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[-1]
    # Flip a byte inside the last member's data: the zip's CRC check must catch it.
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size // 2
    content[offset] ^= 0xFF
    path.write_bytes(bytes(content))
    target = build_model("seed", seed=2)
    before = target.state_dict()
    with pytest.raises(WeightsMismatchError) as excinfo:
        target.load(path)
    assert str(path) in str(excinfo.value)
    assert repr(info.filename.removesuffix(".npy")) in str(excinfo.value)
    _assert_unchanged(target, before)


def test_single_npy_array_is_not_a_weights_file(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.zeros(3, dtype=np.float32))
    with pytest.raises(WeightsMismatchError, match=str(path)):
        _net().load(path)


def test_load_state_dict_checks_everything_before_writing():
    target = _net()
    before = target.state_dict()
    state = target.state_dict()
    last = list(state)[-1]
    state = {k: v + 1 for k, v in state.items()}
    state[last] = np.array(["x"] * state[last].size).reshape(state[last].shape)
    with pytest.raises(WeightsMismatchError, match=f"in memory.*{last}"):
        target.load_state_dict(state, source="in memory")
    _assert_unchanged(target, before)
    # Lists of numbers are fine; they become the network's dtype.
    good = {k: (v + 1).tolist() for k, v in before.items()}
    target.load_state_dict(good)
    np.testing.assert_array_equal(target.state_dict()[last], before[last] + 1)
    assert target.state_dict()[last].dtype == np.float32
