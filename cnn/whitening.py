"""Whitening-based initialisation of a network's first convolution.

The first layer's filters start as the principal directions of the training images'
patches, each scaled to unit output variance: filter pairs +v_i / sqrt(l_i + eps) and
-v_i / sqrt(l_i + eps) for the largest eigenvalues l_i of the (KH*KW*C)^2 patch covariance
(eigenvectors v_i). The layer then starts out decorrelating its input, and the pairs of
opposite sign let a ReLU pass either half, as in Keller Jordan's airbench and tysam's
hlb-cifar10, which start (and keep) their first layer this way.
"""

from __future__ import annotations

import numpy as np

from cnn.layers import Conv2D
from cnn.network import Sequential

# Images per chunk when summing the patch covariance: 512 images of 32x32x3 give 460,800
# patches of 27 numbers, 100 MB in float64, instead of all patches of the set at once.
_CHUNK = 512


def patch_covariance(images: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """The (D, D) covariance, D = KH*KW*C, of every valid KHxKW patch of (N, H, W, C) images,
    in float64; each patch flattened in the (KH, KW, C) order of a Conv2D weight."""
    kh, kw = kernel
    d = kh * kw * images.shape[3]
    total, outer, count = np.zeros(d), np.zeros((d, d)), 0
    for start in range(0, len(images), _CHUNK):
        chunk = images[start:start + _CHUNK].astype(np.float64)
        windows = np.lib.stride_tricks.sliding_window_view(chunk, (kh, kw), axis=(1, 2))
        # (n, Ho, Wo, C, KH, KW) -> (n*Ho*Wo, KH, KW, C) -> (P, D)
        patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, d)
        total += patches.sum(axis=0)
        outer += patches.T @ patches
        count += len(patches)
    if count < 2:
        raise ValueError(f"need at least 2 patches of {kh}x{kw} to whiten, got {count}")
    mean = total / count
    return (outer - count * np.outer(mean, mean)) / (count - 1)


def whitening_filters(images: np.ndarray, kernel: tuple[int, int], pairs: int,
                      eps: float = 5e-4) -> np.ndarray:
    """(KH, KW, C, 2 * pairs) filters: for the `pairs` largest eigenvalues l_i of the patch
    covariance, v_i / sqrt(l_i + eps) and then the same filters negated.

    `eps` is in units of the images' variance (per-channel normalised images have 1).
    """
    covariance = patch_covariance(images, kernel)
    d = len(covariance)
    if not 1 <= pairs <= d:
        raise ValueError(f"pairs must be in [1, {d}] for {kernel} patches of "
                         f"{images.shape[3]} channels, got {pairs}")
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    top = np.argsort(eigenvalues)[::-1][:pairs]
    scaled = eigenvectors[:, top] / np.sqrt(np.maximum(eigenvalues[top], 0.0) + eps)  # (D, p)
    filters = np.concatenate([scaled, -scaled], axis=1)  # (D, 2p)
    return filters.reshape(*kernel, images.shape[3], 2 * pairs)


def whiten_first_conv(net: Sequential, images: np.ndarray, eps: float = 5e-4) -> int:
    """Overwrite the first Conv2D's filters with `whitening_filters` of (N, H, W, C) images
    (as the network sees them, normalised). Filters beyond the largest even number that
    the patch dimension allows keep their initial values. Returns how many were replaced.
    """
    conv = next((m for _, m in net.named_modules() if isinstance(m, Conv2D)), None)
    if conv is None:
        raise ValueError("whitening the first convolution needs a network with a Conv2D")
    if conv.in_channels != images.shape[3]:
        raise ValueError(f"the first convolution takes {conv.in_channels} channels, "
                         f"the images have {images.shape[3]}")
    d = conv.kernel[0] * conv.kernel[1] * conv.in_channels
    pairs = min(conv.out_channels // 2, d)
    if pairs < 1:
        raise ValueError("whitening needs a first convolution with at least 2 filters")
    weights = conv.params["W"]  # (KH, KW, C, F), updated in place
    weights[..., :2 * pairs] = whitening_filters(images, conv.kernel, pairs, eps)
    return 2 * pairs
