"""The subset recipes trained by PyTorch alone: the yardstick for this project's accuracies.

    python -m experiments.torch_recipe --model seed --seeds 0 1 2
    python -m experiments.torch_recipe --model vgg --seeds 0 --root ../shared/data

Prints one line per seed (test accuracy and wall time) and their mean; logs nothing.
The recipe is described in experiments.pytorch.recipe. PyTorch is an optional extra
(`pip install torch`).
"""

from __future__ import annotations

import argparse
import statistics

from cnn.models import ARCHITECTURES
from experiments.pytorch.recipe import EPOCHS, train_seeds


def main(argv: list[str] | None = None) -> list[float]:
    """Entry point of `python -m experiments.torch_recipe`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(ARCHITECTURES), default="seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", default=None, help="data root (default: $CIFAR10_ROOT, ./data)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args(argv)
    accuracies = train_seeds(args.model, args.seeds, args.root, args.epochs,
                             report=lambda line: print(line, flush=True))
    print(f"{args.model} mean test_acc={statistics.mean(accuracies):.4f} "
          f"over {len(accuracies)} seeds")
    return accuracies


if __name__ == "__main__":
    main()
