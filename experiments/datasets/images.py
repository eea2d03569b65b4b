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

    16-bit greyscale (Pillow modes "I;16*") becomes 8-bit as round(v * 255 / 65535). 32-bit
    integer images (mode "I") are read the same way, as 16-bit samples clipped to 0..65535:
    that is what Pillow decodes 16-bit files to in some versions and after some operations.
    Floating-point images (mode "F", e.g. a 32-bit TIFF) are taken as 0..1 when every value
    lies there, as most tools write them, else as 0..255; Pillow's own conversion would
    read 0..1 as black. NaN or infinite values are a ValueError.
    """
    from PIL import Image, ImageOps

    height, width, channels = (int(n) for n in shape)
    if channels not in (1, 3):
        raise ValueError(f"images need 1 or 3 channels, got shape {tuple(shape)}")
    image = ImageOps.exif_transpose(image)
    if image.mode == "I" or image.mode.startswith("I;16"):
        # Pillow's own conversion to 8 bits clips at 255 instead of scaling, which turns a
        # 16-bit gradient into black and white; scale first, keeping a transparent value.
        wide = np.asarray(image, dtype=np.int64)
        grey = np.rint(np.clip(wide, 0, 65535) * (255 / 65535)).astype(np.uint8)
        transparent = image.info.get("transparency")
        if isinstance(transparent, int):
            alpha = np.where(wide == transparent, 0, 255).astype(np.uint8)
            image = Image.fromarray(np.stack([grey, alpha], axis=-1))  # mode "LA"
        else:
            image = Image.fromarray(grey)  # mode "L"
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("the floating-point image has NaN or infinite values")
        scale = 255.0 if values.size and 0.0 <= values.min() and values.max() <= 1.0 else 1.0
        image = Image.fromarray(np.rint(np.clip(values * scale, 0, 255)).astype(np.uint8))
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
    file if it cannot be decoded, or if it has more pixels than Pillow's guard against
    decompression bombs allows: PIL.Image.MAX_IMAGE_PIXELS (about 89 million by default;
    Pillow warns above it and refuses twice that). To read such images on purpose, set
    `PIL.Image.MAX_IMAGE_PIXELS` higher (None: no limit) in the process before loading.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return to_array(image, shape)
    except FileNotFoundError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # The warning arrives here only where warnings are errors (python -W error).
        limit = Image.MAX_IMAGE_PIXELS
        raise CorruptDatasetError(
            f"{path}: refused as a possible decompression bomb: {e} Pillow's limit, "
            f"PIL.Image.MAX_IMAGE_PIXELS, is {f'{limit:,}' if limit else 'off'} pixels (it "
            "warns above it and refuses twice it). The image is resized to "
            f"{shape[1]}x{shape[0]} anyway, so a smaller copy of it works as well; to read it "
            "as it is, raise the limit in the process that reads it before loading: "
            "`PIL.Image.MAX_IMAGE_PIXELS = <pixels>` (None removes the limit)."
        ) from e
    except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError is an OSError
        raise CorruptDatasetError(f"{path}: cannot be read as an image ({e})") from e


def load_images(paths: Sequence[Path], shape: Sequence[int]) -> np.ndarray:
    """Read image files into one uint8 array (N, H, W, C)."""
    out = np.empty((len(paths), *shape), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = load_image(path, shape)
    return out
