"""Figures of one run: learning curves, confusion matrix, first-layer filters, the loss
along the line from the initial to the trained weights, and the loss on a plane through
the trained weights.

Built with matplotlib's object API (`Figure`) rather than pyplot, so no global figure
state or GUI backend is involved; save them with `fig.savefig` or `mlflow.log_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def learning_curves(history: Sequence[dict[str, float]], title: str = "") -> Figure:
    """Loss and accuracy per epoch, training and (if present) validation; and the
    sharpness beside its stability threshold when the run measured it."""
    epochs = np.arange(1, len(history) + 1)
    sharp = any("sharpness" in h for h in history)
    fig = Figure(figsize=(15 if sharp else 10, 4), layout="constrained")
    ax_loss, ax_acc, *rest = fig.subplots(1, 3 if sharp else 2)
    if sharp:
        sharpness_panel(rest[0], history)
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split, style in (("train", "-o"), ("val", "--s")):
            key = f"{split}_{metric}"
            if history and key in history[0]:
                ax.plot(epochs, [h[key] for h in history], style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("cross-entropy" if metric == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    ax_acc.set_ylim(0, 1)
    if title:
        fig.suptitle(title)
    return fig


def sharpness_panel(ax, history: Sequence[dict[str, float]]) -> None:
    """The sharpness at each epoch that measured it, and the threshold above which SGD at
    that epoch's rate is unstable (the Edge of Stability is the sharpness meeting it)."""
    measured = [(e, h) for e, h in enumerate(history, start=1) if "sharpness" in h]
    ax.plot([e for e, _ in measured], [h["sharpness"] for _, h in measured], "-o", ms=3,
            color="C3", label="sharpness")
    with_threshold = [(e, h) for e, h in measured if "sharpness_threshold" in h]
    if with_threshold:
        ax.plot([e for e, _ in with_threshold],
                [h["sharpness_threshold"] for _, h in with_threshold], "--", color="grey",
                label="stability threshold (2/lr)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("top Hessian eigenvalue")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j] = images of class i predicted as class j; (K, K) int64."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def confusion_figure(counts: np.ndarray, class_names: Sequence[str], title: str = "") -> Figure:
    """The confusion matrix as a heat map, each row normalised to the class's total."""
    k = len(class_names)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    accuracy = f"test accuracy {np.trace(counts) / max(counts.sum(), 1):.3f}"
    ax.set_title(f"{title}: {accuracy}" if title else accuracy)
    return fig


def filters_figure(weights: np.ndarray, title: str = "first-layer filters") -> Figure:
    """A conv layer's filters W (KH, KW, C_in, F) as small images, one per output channel.

    Each filter is scaled to [0, 1] on its own, so the pattern shows whatever its size;
    with 3 input channels it is drawn in colour (as RGB), otherwise channel 0 in grey.
    """
    kh, kw, c_in, n = weights.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(cols * 0.9, rows * 0.9 + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for f, ax in enumerate(axes):
        ax.set_axis_off()
        if f >= n:
            continue
        w = weights[..., f].astype(np.float64)
        w = (w - w.min()) / (w.max() - w.min() + 1e-12)
        ax.imshow(w if c_in == 3 else w[..., 0], cmap=None if c_in == 3 else "gray",
                  interpolation="nearest")
    fig.suptitle(title)
    return fig


def interpolation_figure(alphas: np.ndarray, loss: Mapping[str, np.ndarray],
                         acc: Mapping[str, np.ndarray], title: str = "") -> Figure:
    """Loss (log scale when it spans more than 10x) and accuracy against alpha, one line
    per set ("train", "test"); alphas (P,), each series (P,). Dotted verticals mark the
    initial (0) and trained (1) weights; a loss that overflowed (inf, NaN) leaves a gap."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, series, label in ((ax_loss, loss, "cross-entropy"), (ax_acc, acc, "accuracy")):
        for k, (name, values) in enumerate(series.items()):
            shown = np.where(np.isfinite(values) & (values > 0), values, np.nan)
            ax.plot(alphas, shown, "-o" if k == 0 else "--s", ms=3, label=name)
        for end in (0.0, 1.0):
            ax.axvline(end, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("alpha  (0: initial weights, 1: trained weights)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in loss.values()])
    if finite.size and finite.max() > 10 * finite.min():  # a blow-up past the ends
        ax_loss.set_yscale("log")
    ax_acc.set_ylim(0, 1)
    if title:
        fig.suptitle(title)
    return fig


def landscape_figure(alphas: np.ndarray, betas: np.ndarray, loss: np.ndarray,
                     title: str = "") -> Figure:
    """Filled contours of loss (A, B) at (alphas[i], betas[j]) on log-spaced levels from its
    least to its greatest finite value; a loss that overflowed (inf, NaN) is drawn at the
    greatest. A star marks the trained weights (0, 0)."""
    from matplotlib.colors import LogNorm

    finite = loss[np.isfinite(loss) & (loss > 0)]
    low, high = (finite.min(), finite.max()) if finite.size else (1.0, 10.0)
    high = max(high, low * 1.01)
    shown = np.clip(np.where(np.isfinite(loss), loss, high), low, high).T  # (B, A): y by x
    levels = np.geomspace(low, high, 16)
    fig = Figure(figsize=(6.4, 5), layout="constrained")
    ax = fig.subplots()
    filled = ax.contourf(alphas, betas, shown, levels=levels, norm=LogNorm(low, high),
                         cmap="viridis", extend="neither")
    ax.contour(alphas, betas, shown, levels=levels, colors="white", linewidths=0.4, alpha=0.6)
    fig.colorbar(filled, ax=ax, label="training loss (cross-entropy), log scale",
                 format="%.3g")
    ax.plot([0.0], [0.0], marker="*", color="red", ms=12, ls="none", label="trained weights")
    ax.set_xlabel("alpha (first filter-normalised direction)")
    ax.set_ylabel("beta (second direction)")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig
