"""One full training epoch of synthetic CIFAR-sized images, in a fresh process: its wall
time and the process's peak resident memory, data set included.

The child process trains the run `experiments.runs.build.build_run` builds for the
full-data recipe (`experiment=vgg_full`, with the model swapped and no validation split):
per-channel normalisation fitted on the training images, reflect-pad-4 random crops and
flips drawn from the run's augment stream, shuffled batches, `cnn.training.fit` with the
recipe's optimiser and schedule, on the chunk threads and with freed memory kept, as
`experiments.train` runs it. Only the images are synthetic: uniform random uint8.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn.data import Splits
from cnn.data.batch_files import IMAGE_SHAPE, NUM_CLASSES
from cnn.training import fit
from experiments.benchmark.fresh import in_fresh_process
from experiments.config import compose_config
from experiments.runs.build import build_run
from experiments.runtime.allocator import keep_freed_memory
from experiments.runtime.threads import chunk_threads

RECIPE = "vgg_full"


@dataclass(frozen=True)
class EpochResult:
    images: int
    seconds: float  # the epoch's wall time, as fit reports it (epoch_time_s)
    peak_rss_mb: float  # the whole process's, after the epoch

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def synthetic_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n uniform random uint8 images (n, 32, 32, 3) and int64 labels (n,) in 0..9."""
    x = rng.integers(0, 256, size=(n, *IMAGE_SHAPE), dtype=np.uint8)
    return x, rng.integers(0, NUM_CLASSES, size=n)


def train_one_epoch(model: str, batch_size: int, images: int) -> EpochResult:
    """Train `model` for one epoch of `images` synthetic images, in this process, as
    `experiments.runs.build.build_run` builds the recipe's run (only the data is given)."""
    keep_freed_memory()  # as experiments.train does
    cfg = compose_config([f"experiment={RECIPE}", f"model={model}",
                          f"trainer.batch_size={batch_size}", "data.n_val=0"])
    x, y = synthetic_images(images, np.random.default_rng(0))
    no_images = np.empty((0, *IMAGE_SHAPE), np.uint8), np.empty(0, np.int64)
    splits = Splits(x, y, *no_images, x[:1], y[:1],  # the epoch is tested on nothing
                    class_names=tuple(map(str, range(NUM_CLASSES))), source=Path("synthetic"))
    with chunk_threads():
        run = build_run(cfg, splits=splits)
        (metrics,) = fit(run.net, run.loss_fn, run.optimizer, run.schedule, run.train_batches,
                         epochs=1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return EpochResult(images, metrics["epoch_time_s"], peak)


def epoch_in_fresh_process(model: str, batch_size: int, images: int) -> EpochResult:
    """train_one_epoch in a spawned process, so that its peak memory is the epoch's alone.
    Raises RuntimeError with the child's traceback if it fails."""
    if images < 1:
        raise ValueError(f"--epoch-images must be at least 1, got {images}")
    return in_fresh_process(train_one_epoch, (model, batch_size, images),
                            f"the epoch of {model}")
