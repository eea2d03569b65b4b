"""Input normalisation fitted on training images: per-channel standardisation.

It is fitted on the training subset only, so no statistic of validation or test images
leaks into training, and works batch by batch so that the whole training set is never held
as floats. (Whitening, where a run wants it, is done by the first convolution's
initialisation: cnn/whitening.py.)
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

# Rows per chunk when fitting: a float64 chunk of 32x32x3 images is then 12.6 MB.
_FIT_CHUNK = 512


def to_unit_range(x: np.ndarray) -> np.ndarray:
    """uint8 images (B, H, W, C) to float32 in [0, 1]: the input of runs without
    normalisation, and of a logged model trained without it."""
    return x.astype(np.float32) / np.float32(255.0)


def _check_images(x: np.ndarray, what: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{what} expects images (N, H, W, C), got shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{what} needs at least one image, got shape {x.shape}")


class Normalizer:
    """Per-channel standardisation: (x - mean) / std, with statistics of the training set.

    fit(x) takes images (N, H, W, C) of any numeric dtype (usually uint8) and computes the
    per-channel mean and population std in float64, stored as float32 (C,).
    Calling it maps a batch (B, H, W, C) to float32 (B, H, W, C).
    """

    def __init__(self, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither (then call fit)")
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        if self.mean is not None and (
            self.mean.shape != self.std.shape or self.mean.ndim != 1 or np.any(self.std <= 0)
        ):
            raise ValueError(
                f"mean and std must be 1-D of equal length with std > 0, got mean {self.mean} "
                f"and std {self.std}"
            )

    def fit(self, x: np.ndarray) -> "Normalizer":
        """Compute the statistics from training images x (N, H, W, C); return self."""
        _check_images(x, "Normalizer.fit")
        # dtype=float64 accumulates without a float64 copy of x; the deviations are then
        # summed chunk by chunk for the same reason (a two-pass variance stays accurate).
        mean = np.mean(x, axis=(0, 1, 2), dtype=np.float64)
        squares = np.zeros_like(mean)
        for start in range(0, len(x), _FIT_CHUNK):
            deviation = x[start : start + _FIT_CHUNK].astype(np.float64)
            deviation -= mean  # in place: one float64 chunk at a time, not two
            squares += np.einsum("nhwc,nhwc->c", deviation, deviation)
        std = np.sqrt(squares / (x.shape[0] * x.shape[1] * x.shape[2]))
        # A constant channel carries no information; dividing by 1 maps it to 0, not NaN.
        std[std == 0] = 1.0
        self.mean = mean.astype(np.float32)
        self.std = std.astype(np.float32)
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Standardise a batch (B, H, W, C) into a new float32 array of the same shape."""
        if self.mean is None or self.std is None:
            raise RuntimeError("Normalizer is not fitted: call fit(x_train) or from_state()")
        if x.ndim != 4 or x.shape[-1] != self.mean.shape[0]:
            raise ValueError(
                f"expected a batch (B, H, W, {self.mean.shape[0]}), got shape {x.shape}"
            )
        out = x.astype(np.float32)
        out -= self.mean
        out /= self.std
        return out

    def state(self) -> dict[str, list[float]]:
        """The statistics as plain lists, e.g. for logging: {"mean": [...], "std": [...]}."""
        if self.mean is None or self.std is None:
            raise RuntimeError("Normalizer is not fitted: nothing to report")
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Normalizer":
        """Rebuild a fitted Normalizer from the dict that state() returned."""
        return cls(mean=np.asarray(state["mean"]), std=np.asarray(state["std"]))
