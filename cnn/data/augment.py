"""Random crops, horizontal flips and cutout of image batches (N, H, W, C), vectorised over N.

Every function draws from the Generator it is given and returns a new array with the
input's shape and dtype (uint8 or float32 alike).
"""

from dataclasses import dataclass

import numpy as np

_PAD_MODES = {"reflect": "reflect", "zero": "constant", "constant": "constant"}


def _check_batch(x: np.ndarray) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images (N, H, W, C), got shape {x.shape}")


def _check_pad(pad: int, mode: str, height: int, width: int) -> None:
    if mode not in _PAD_MODES:
        raise ValueError(f"pad mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    # np.pad's reflect mirrors without repeating the edge, so it needs pad < side.
    if _PAD_MODES[mode] == "reflect" and pad >= min(height, width):
        raise ValueError(f"reflect padding needs pad < {min(height, width)}, got {pad}")


def random_crop(
    x: np.ndarray, pad: int, rng: np.random.Generator, mode: str = "reflect"
) -> np.ndarray:
    """Pad each image by `pad` pixels on every side and crop it back at a random offset.

    x: (N, H, W, C). mode: "reflect" (mirror, as np.pad's "reflect") or "zero"/"constant"
    (zeros; for standardised input that is the mean colour). Each image gets its own
    offset, uniform in 0..2*pad for rows and columns. pad=0 returns an unchanged copy.
    Returns (N, H, W, C) with x's dtype.
    """
    _check_batch(x)
    n, height, width, _ = x.shape
    _check_pad(pad, mode, height, width)
    if pad == 0:
        return x.copy()
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=_PAD_MODES[mode])
    rows = rng.integers(0, 2 * pad + 1, size=n)[:, None] + np.arange(height)  # (N, H)
    cols = rng.integers(0, 2 * pad + 1, size=n)[:, None] + np.arange(width)  # (N, W)
    # One gather for the whole batch: image i takes padded[i, rows[i], :][:, cols[i]].
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def random_flip(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right with probability `p`; x (N, H, W, C) -> same shape."""
    _check_batch(x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability must be in [0, 1], got {p}")
    flip = rng.random(len(x)) < p
    out = x.copy()
    out[flip] = x[flip, :, ::-1]
    return out


def cutout(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Zero a size x size square of each image (DeVries and Taylor 2017, "Improved
    Regularization of Convolutional Neural Networks with Cutout").

    x: (N, H, W, C). Each square's centre is uniform over the image's pixels and the square
    is clipped at the edges, so near a border less is cut; on standardised input zero is
    the mean colour. size=0 returns an unchanged copy and draws nothing.
    Returns (N, H, W, C) with x's dtype.
    """
    _check_batch(x)
    if size < 0:
        raise ValueError(f"cutout size must be >= 0, got {size}")
    out = x.copy()
    if size == 0:
        return out
    n, height, width, _ = x.shape
    top = rng.integers(0, height, size=n)[:, None] - size // 2  # (N, 1): the square's first row
    left = rng.integers(0, width, size=n)[:, None] - size // 2  # (N, 1)
    rows = np.arange(height) - top  # (N, H): a row is cut where 0 <= rows < size
    cols = np.arange(width) - left  # (N, W)
    cut = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    out[cut] = 0  # cut: (N, H, W), every channel of a cut pixel
    return out


@dataclass(frozen=True)
class Augmenter:
    """Training augmentation applied per batch: random crop (if crop_pad > 0), then flip,
    then cutout (if cutout > 0: the square's side in pixels).

    Call as augmenter(x_batch, rng) with x_batch (B, H, W, C); returns a new array of the
    same shape and dtype. With crop_pad=0 and flip=False it returns an unchanged copy.
    """

    crop_pad: int = 0
    pad_mode: str = "reflect"
    flip: bool = False
    cutout: int = 0

    def __post_init__(self) -> None:
        # Fail when the config is read rather than at the first batch of training.
        if self.pad_mode not in _PAD_MODES:
            raise ValueError(f"pad_mode must be one of {sorted(_PAD_MODES)}, got {self.pad_mode!r}")
        if self.crop_pad < 0:
            raise ValueError(f"crop_pad must be >= 0, got {self.crop_pad}")
        if self.cutout < 0:
            raise ValueError(f"cutout must be >= 0, got {self.cutout}")

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = random_crop(x, self.crop_pad, rng, self.pad_mode) if self.crop_pad else x.copy()
        if self.flip:
            out = random_flip(out, rng)
        return cutout(out, self.cutout, rng) if self.cutout else out
