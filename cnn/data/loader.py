"""Mini-batch iteration that converts images to float32 one batch at a time."""

from collections.abc import Callable, Iterator

import numpy as np


class BatchIterator:
    """Iterate over (x_batch, y_batch) mini-batches; each iter() is one epoch.

    x: images (N, H, W, C), kept as given (normally uint8) so the images are never copied
    to floats as a whole. y: integer labels (N,).

    Each batch is gathered, passed through `transform` (e.g. a fitted Normalizer; without
    one it is only cast to float32), then through `augment(batch, rng)`. Augmenting after
    normalisation means zero padding fills with the mean colour. Yields x_batch float32
    (B, H, W, C) and y_batch int64 (B,).

    With shuffle=True the order is redrawn from `rng` at the start of every epoch, so a
    run is reproducible from the Generator's seed. drop_last=True skips a last batch that
    would be smaller than batch_size; otherwise it is yielded.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        *,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        shuffle: bool = False,
        rng: np.random.Generator | None = None,
        drop_last: bool = False,
    ) -> None:
        if x.ndim != 4:
            raise ValueError(f"x must be images (N, H, W, C), got shape {x.shape}")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                f"y must be integer labels (N,) with N = {len(x)}, got dtype {y.dtype} "
                f"shape {y.shape}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if (shuffle or augment is not None) and rng is None:
            # No hidden default generator: every random draw must come from a seeded one.
            raise ValueError(
                "shuffle and augment need rng=np.random.default_rng(seed); none was given"
            )
        self.x = x
        self.y = y
        self.batch_size = int(batch_size)
        self.transform = transform
        self.augment = augment
        self.shuffle = shuffle
        self.rng = rng
        self.drop_last = drop_last

    def __len__(self) -> int:
        """The number of batches per epoch."""
        full, rest = divmod(len(self.x), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(self.x)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            batch = self.x[idx]
            batch = self.transform(batch) if self.transform is not None else batch
            # Guarantees the promised dtype even if a transform returns float64.
            batch = batch.astype(np.float32, copy=False)
            if self.augment is not None:
                batch = self.augment(batch, self.rng)
            yield batch, self.y[idx].astype(np.int64, copy=False)
