"""Input normalisation fitted on training images: per-channel standardisation and ZCA.

Both are fitted on the training subset only, so no statistic of validation or test
images leaks into training, and both work batch by batch so that the whole dataset is
never held as floats.
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


class ZCAWhitener:
    """ZCA whitening fitted on training images: decorrelates all pixels, float32 out.

    x is first multiplied by `scale` (1/255 maps uint8 to [0, 1]), then
    W = U diag(1 / sqrt(S + epsilon)) U^T from the eigendecomposition U S U^T of the
    covariance of the flattened training images, and a batch maps to (x - mean) W.
    `epsilon` (in units of the scaled data's variance) damps the low-variance directions
    that would otherwise amplify noise; 0.1 for [0, 1] data is a common choice.
    Fitting costs an eigendecomposition of a (H*W*C)^2 matrix: about 10 s for CIFAR-10.
    """

    def __init__(self, epsilon: float = 0.1, scale: float = 1.0 / 255.0) -> None:
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.epsilon = float(epsilon)
        self.scale = float(scale)
        self.mean: np.ndarray | None = None  # float32 (D,)
        self.matrix: np.ndarray | None = None  # float32 (D, D), symmetric
        self.image_shape: tuple[int, ...] | None = None  # (H, W, C)

    def fit(self, x: np.ndarray) -> "ZCAWhitener":
        """Fit the whitening transform on training images x (N, H, W, C); return self."""
        _check_images(x, "ZCAWhitener.fit")
        n = len(x)
        flat = x.reshape(n, -1)
        mean = np.mean(flat, axis=0, dtype=np.float64) * self.scale
        covariance = np.zeros((flat.shape[1], flat.shape[1]))
        for start in range(0, n, _FIT_CHUNK):
            centred = flat[start : start + _FIT_CHUNK].astype(np.float64)
            centred *= self.scale
            centred -= mean
            covariance += centred.T @ centred
        covariance /= n
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        # eigh can return tiny negative eigenvalues for a singular covariance.
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        if self.epsilon == 0 and np.any(eigenvalues == 0):
            raise ValueError("the covariance is singular; use epsilon > 0")
        matrix = (eigenvectors / np.sqrt(eigenvalues + self.epsilon)) @ eigenvectors.T
        self.mean = mean.astype(np.float32)
        self.matrix = matrix.astype(np.float32)
        self.image_shape = x.shape[1:]
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Whiten a batch (B, H, W, C) into a new float32 array of the same shape."""
        if self.mean is None or self.matrix is None:
            raise RuntimeError("ZCAWhitener is not fitted: call fit(x_train) first")
        if x.ndim != 4 or x.shape[1:] != self.image_shape:
            raise ValueError(f"expected a batch (B, *{self.image_shape}), got shape {x.shape}")
        flat = x.reshape(len(x), -1).astype(np.float32) * np.float32(self.scale) - self.mean
        return (flat @ self.matrix).reshape(x.shape)
