"""Optional: the PyTorch yardstick of the subset recipes (experiments.torch_recipe) learns.

Skipped when PyTorch is not installed (`pip install torch==2.13.0` here).
"""

import pytest

pytest.importorskip("torch")
from experiments import torch_recipe  # noqa: E402


@pytest.mark.torch
@pytest.mark.data
@pytest.mark.slow
def test_one_epoch_of_the_seed_recipe_beats_chance(cifar_root, capsys):
    (acc,) = torch_recipe.main(["--model", "seed", "--seeds", "0", "--epochs", "1",
                                "--root", str(cifar_root)])
    assert acc > 0.25  # chance is 0.10; one epoch on the 5,085 images gives about 0.37
    assert "seed seed=0 test_acc=" in capsys.readouterr().out
