"""One full training epoch of synthetic CIFAR-sized images, in a fresh process: its wall
time and the process's peak resident memory, data set included.

The child process trains as a run of the full-data recipe (`experiment=vgg_full`, with
the model swapped and no validation split) trains: per-channel normalisation fitted on
the training images, reflect-pad-4 random crops and flips drawn from the run's augment
stream, shuffled batches through `cnn.data.BatchIterator`, `cnn.training.fit` with the
recipe's optimiser and schedule, on the chunk threads and with freed memory kept, as
`experiments.train` runs it. Only the images are synthetic: uniform random uint8.
"""

from __future__ import annotations

import multiprocessing
import queue as queues
import resource
import traceback
from dataclasses import dataclass

import numpy as np

from cnn.data import Augmenter, BatchIterator, Normalizer
from cnn.data.batch_files import IMAGE_SHAPE, NUM_CLASSES
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import make_optimizer
from cnn.rng import make_generators
from cnn.schedules import make_schedule
from cnn.training import fit
from experiments.config import compose_config
from experiments.config.validate import group_args, init_args
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
    """Train `model` for one epoch of `images` synthetic images, in this process."""
    keep_freed_memory()  # as experiments.train does
    cfg = compose_config([f"experiment={RECIPE}", f"model={model}",
                          f"trainer.batch_size={batch_size}", "data.n_val=0"])
    generators = make_generators(cfg.trainer.seed)
    x, y = synthetic_images(images, np.random.default_rng(0))
    net = build_model(cfg.model.name, num_classes=NUM_CLASSES, input_shape=IMAGE_SHAPE,
                      init=cfg.init.name, init_knobs=init_args(cfg.init),
                      seed=int(generators["init"].integers(2**31 - 1)),
                      dtype=np.dtype(cfg.trainer.dtype), **group_args(cfg.model))
    aug = cfg.data.augment
    augmenter, augment_rng = Augmenter(aug.crop_pad, aug.pad_mode, aug.flip), generators["augment"]
    batches = BatchIterator(
        x, y, batch_size, transform=Normalizer().fit(x), shuffle=True, rng=generators["shuffle"],
        # Its own stream, as a run's: the shuffling generator BatchIterator passes is unused.
        augment=lambda b, _shuffle_rng: augmenter(b, augment_rng),
    )
    steps, s = len(batches), cfg.schedule
    schedule = make_schedule(s.name, cfg.optim.lr, steps, steps_per_epoch=steps,
                             warmup_steps=round(s.warmup_epochs * steps),
                             **group_args(s, "warmup_epochs"))
    optimizer = make_optimizer(cfg.optim.name, **group_args(cfg.optim))
    with chunk_threads():
        (metrics,) = fit(net, SoftmaxCrossEntropy(cfg.trainer.label_smoothing), optimizer,
                         schedule, batches, epochs=1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return EpochResult(images, metrics["epoch_time_s"], peak)


def _child(model: str, batch_size: int, images: int, results) -> None:
    try:
        results.put(train_one_epoch(model, batch_size, images))
    except BaseException:  # the parent re-raises it with the child's traceback
        results.put(traceback.format_exc())


def epoch_in_fresh_process(model: str, batch_size: int, images: int) -> EpochResult:
    """train_one_epoch in a spawned process, so that its peak memory is the epoch's alone.
    Raises RuntimeError with the child's traceback if it fails."""
    if images < 1:
        raise ValueError(f"--epoch-images must be at least 1, got {images}")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_child, args=(model, batch_size, images, results))
    child.start()
    try:
        while True:
            try:
                outcome = results.get(timeout=5)
                break
            except queues.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"the epoch process of {model} died (exit code "
                                       f"{child.exitcode}) without a result") from None
    finally:
        child.join(timeout=60)
    if isinstance(outcome, str):
        raise RuntimeError(f"the epoch of {model} failed in its process:\n{outcome}")
    return outcome
