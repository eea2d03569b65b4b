"""experiments.datasets decoding: 16- and 32-bit greyscale keep their levels, and an image
Pillow refuses as too large fails naming the file, the limit and how to raise it."""

import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from cnn.data.errors import CorruptDatasetError  # noqa: E402
from experiments.datasets.image_folder import prepare_image_folder  # noqa: E402
from experiments.datasets.images import load_image, to_array  # noqa: E402

WIDTH = 512


def _gradient(dtype) -> np.ndarray:
    """Two rows running 0..65535 left to right."""
    row = np.rint(np.linspace(0, 65535, WIDTH)).astype(dtype)
    return np.stack([row, row])


def _assert_full_grey_ramp(out: np.ndarray) -> None:
    levels = out[0, :, 0].astype(int)
    assert levels[0] == 0 and levels[-1] == 255
    assert np.all(np.diff(levels) >= 0), "not monotone"
    assert len(np.unique(levels)) >= 250, f"only {len(np.unique(levels))} levels"


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_png_keeps_its_grey_levels(tmp_path, channels):
    path = tmp_path / "ramp16.png"
    Image.fromarray(_gradient(np.uint16)).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I;16")  # what the fix is about
    out = load_image(path, (2, WIDTH, channels))
    assert out.dtype == np.uint8
    _assert_full_grey_ramp(out)
    for c in range(1, channels):
        np.testing.assert_array_equal(out[..., c], out[..., 0])


def test_16_bit_scaling_is_v_times_255_over_65535_rounded():
    values = np.array([[0, 128, 129, 257, 32767, 32768, 65534, 65535]], dtype=np.uint16)
    out = to_array(Image.fromarray(values), (1, values.shape[1], 1))[0, :, 0]
    expected = np.rint(values[0].astype(float) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_32_bit_integer_image_is_read_as_16_bit_samples():
    image = Image.fromarray(_gradient(np.int32))
    assert image.mode == "I"
    _assert_full_grey_ramp(to_array(image, (2, WIDTH, 1)))
    clipped = Image.fromarray(np.array([[-5, 70000]], dtype=np.int32))
    np.testing.assert_array_equal(to_array(clipped, (1, 2, 1))[0, :, 0], [0, 255])


def test_16_bit_transparent_value_is_laid_on_white(tmp_path):
    path = tmp_path / "ramp16-trns.png"
    ramp = _gradient(np.uint16)
    Image.fromarray(ramp).save(path, transparency=int(ramp[0, 0]))  # the black end
    out = load_image(path, (2, WIDTH, 1))[0, :, 0]
    assert out[0] == 255  # transparent: the white background
    assert out[1] < 5 and out[-1] == 255  # the rest is the ramp


# --- images too large for Pillow --------------------------------------------------------------


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height 8-bit grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1)))
                     + chunk(b"IEND", b""))
    return path


def _assert_explains_the_limit(message: str, path: Path) -> None:
    assert str(path) in message
    assert "PIL.Image.MAX_IMAGE_PIXELS" in message
    assert f"{Image.MAX_IMAGE_PIXELS:,}" in message  # the limit in force
    assert re.search(r"400,?000,?000|400000000", message), message  # the file's pixel count


def test_image_claiming_20000_squared_pixels_is_refused_naming_file(tmp_path):
    path = _png_claiming(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(CorruptDatasetError) as excinfo:
        load_image(path, (32, 32, 3))
    _assert_explains_the_limit(str(excinfo.value), path)


def test_bomb_warning_turned_error_is_refused_naming_file(tmp_path):
    # Between the limit and twice it Pillow only warns; with warnings as errors it raises.
    path = _png_claiming(tmp_path / "big.png", 10000, 10000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(CorruptDatasetError, match="MAX_IMAGE_PIXELS") as excinfo:
            load_image(path, (32, 32, 3))
    assert str(path) in str(excinfo.value)


def test_image_folder_with_a_bomb_names_the_file(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / label / f"{i}.png")
    bomb = _png_claiming(tmp_path / "b" / "1.png", 20000, 20000)
    with pytest.raises(CorruptDatasetError) as excinfo:
        prepare_image_folder(tmp_path, image_size=8, test_fraction=0.5)
    _assert_explains_the_limit(str(excinfo.value), bomb)
