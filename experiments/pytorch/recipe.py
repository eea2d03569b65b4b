"""The subset recipes trained by PyTorch alone: the yardstick for this project's accuracies.

The same architecture (experiments.pytorch.twin.to_torch) with PyTorch's own
default initialisation, SGD, OneCycleLR, random crop and flip, all drawn from
torch.manual_seed(seed); from this project only the CIFAR-10 reader is used. The
recipe is that of experiment=seed_subset / vgg_subset: per-channel normalisation,
reflect-pad-4 crop and flip, SGD with Nesterov momentum 0.9 and weight decay 5e-4,
batch 128, one-cycle to 0.05 at 25% (momentum held at 0.9), 30 epochs.
"""

from __future__ import annotations

import time

from cnn.data import load_cifar10, resolve_root, to_unit_range
from cnn.models import build_model
from experiments.pytorch.twin import nhwc_to_nchw, to_torch

PAD, BATCH, EPOCHS, MAX_LR = 4, 128, 30, 0.05


def _augment(x, torch):
    """Reflect-pad each image by PAD, crop it back at a random offset, flip half of them."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (PAD,) * 4, mode="reflect")
    top = torch.randint(0, 2 * PAD + 1, (n,)).tolist()
    left = torch.randint(0, 2 * PAD + 1, (n,)).tolist()
    out = torch.stack([padded[i, :, top[i] : top[i] + h, left[i] : left[i] + w] for i in range(n)])
    flip = torch.rand(n) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def train_recipe(model: str, seed: int, root: str | None = None, epochs: int = EPOCHS) -> float:
    """Train `model` on every training image under the data root; return the test accuracy."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    data = load_cifar10(resolve_root(root))
    x_train = nhwc_to_nchw(to_unit_range(data.x_train))  # (N, 3, 32, 32)
    x_test = nhwc_to_nchw(to_unit_range(data.x_test))
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    # torch.tensor copies: the loaded arrays are read-only.
    y_train, y_test = torch.tensor(data.y_train), torch.tensor(data.y_test)

    net = to_torch(build_model(model), copy_weights=False)  # PyTorch's own initialisation
    steps_per_epoch = -(-len(x_train) // BATCH)
    opt = torch.optim.SGD(
        net.parameters(), lr=MAX_LR, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=MAX_LR, total_steps=epochs * steps_per_epoch, pct_start=0.25,
        cycle_momentum=False,
    )
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x_train))
        for start in range(0, len(x_train), BATCH):
            idx = order[start : start + BATCH]
            loss = F.cross_entropy(net(_augment(x_train[idx], torch)), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    net.eval()
    with torch.no_grad():
        predictions = torch.cat([net(part).argmax(1) for part in x_test.split(500)])
    return (predictions == y_test).float().mean().item()


def train_seeds(model: str, seeds: list[int], root: str | None = None, epochs: int = EPOCHS,
                report=print) -> list[float]:
    """train_recipe for each seed, reporting each test accuracy and the wall time."""
    accuracies = []
    for seed in seeds:
        started = time.perf_counter()
        accuracies.append(train_recipe(model, seed, root, epochs))
        report(f"{model} seed={seed} test_acc={accuracies[-1]:.4f} "
               f"({time.perf_counter() - started:.0f} s)")
    return accuracies
