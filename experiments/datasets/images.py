"""Image files as the network's input: any format and mode Pillow reads, as uint8 (H, W, C).

Pillow decodes and resizes images here, not in `cnn/`, which stays NumPy and the standard
library only. Training on an image folder and `python -m experiments.predict` read files
through the same functions, so a file is seen the same way by both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnn.data.errors import CorruptDatasetError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def to_array(image: Image.Image, shape: Sequence[int]) -> np.ndarray:
    """A decoded image as the network's input: uint8 (H, W, C), C = 3 (RGB) or 1 (grey).

    The image is turned upright from its EXIF orientation (phone photos), transparent
    pixels are laid on white (their own colour values are often arbitrary), and the
    whole image is resized to W x H without keeping its aspect ratio.
    """
    from PIL import Image, ImageOps

    height, width, channels = (int(n) for n in shape)
    if channels not in (1, 3):
        raise ValueError(f"images need 1 or 3 channels, got shape {tuple(shape)}")
    image = ImageOps.exif_transpose(image)
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB" if channels == 3 else "L")
    if image.size != (width, height):
        # Pillow's bilinear filter widens with the scale factor, so downscaling is antialiased.
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).reshape(height, width, channels)


def load_image(path: str | os.PathLike, shape: Sequence[int]) -> np.ndarray:
    """Read one image file (any format and mode Pillow reads) as uint8 `shape` (H, W, C).

    Raises FileNotFoundError if there is no such file, CorruptDatasetError naming the
    file if it cannot be decoded.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return to_array(image, shape)
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError is an OSError
        raise CorruptDatasetError(f"{path}: cannot be read as an image ({e})") from e


def load_images(paths: Sequence[Path], shape: Sequence[int]) -> np.ndarray:
    """Read image files into one uint8 array (N, H, W, C)."""
    out = np.empty((len(paths), *shape), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = load_image(path, shape)
    return out
