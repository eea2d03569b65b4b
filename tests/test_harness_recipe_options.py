"""The accuracy-frontier ingredients as config options: experiment=frontier_subset composes
them, each is switched off by one override, and bad values are refused naming the key;
experiment=resnet_subset (its first name) and frontier_full are that recipe.
The whitened stem is built from the training images as the network sees them.
(tests/test_harness_models.py trains a tiny resnet with them on.)"""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from cnn.whitening import whitening_filters
from experiments.config import compose_config
from experiments.config.validate import ConfigError, validate
from experiments.runs.build import build_run

# One override each switches an ingredient off (as docs/results.md's ablation table does).
INGREDIENTS_OFF = {
    "trainer.label_smoothing=0.0": ("trainer", "label_smoothing", 0.0),
    "trainer.weight_average=0.0": ("trainer", "weight_average", 0.0),
    "trainer.test_flip=false": ("trainer", "test_flip", False),
    "trainer.epochs=30": ("trainer", "epochs", 30),
}


def test_every_ingredient_is_on_in_the_recipe_and_off_by_default():
    recipe, default = compose_config(["experiment=frontier_subset"]), compose_config([])
    validate(recipe)
    for override, (group, key, off) in INGREDIENTS_OFF.items():
        assert recipe[group][key] != off, override
        ablated = compose_config(["experiment=frontier_subset", override])
        assert ablated[group][key] == off
    assert (default.trainer.label_smoothing, default.trainer.weight_average,
            default.trainer.test_flip) == (0.0, 0.0, False)
    # The whitened stem, cutout and shifted test views are options the recipe leaves off
    # (validation did not choose them).
    assert not recipe.init.whiten_first_conv and not default.init.whiten_first_conv
    assert recipe.data.augment.cutout == default.data.augment.cutout == 0
    assert recipe.trainer.test_translate == default.trainer.test_translate == 0


def _plain(cfg) -> dict:
    return OmegaConf.to_container(cfg)


def test_the_first_name_and_the_full_data_recipe_are_the_frontier_recipe():
    # resnet_subset runs logged before the rename rerun as they were.
    assert _plain(compose_config(["experiment=resnet_subset"])) == _plain(
        compose_config(["experiment=frontier_subset"]))
    full = compose_config(["experiment=frontier_full"])
    assert full.data.n_val == 5000
    assert _plain(full) == _plain(compose_config(["experiment=frontier_subset", "data.n_val=5000"]))
    validate(full)


@pytest.mark.parametrize(("overrides", "message"), [
    (["experiment=frontier_subset", "trainer.weight_average=1.0"],
     "trainer.weight_average must be in [0, 1)"),
    (["experiment=frontier_subset", "trainer.weight_average=-0.1"],
     "trainer.weight_average must be in [0, 1)"),
    (["experiment=frontier_subset", "+trainer.test_flips=true"], "trainer.test_flips: unknown key"),
    (["experiment=frontier_subset", "trainer.test_translate=-1"],
     "trainer.test_translate must be >= 0"),
    (["experiment=frontier_subset", "trainer.test_translate=32"],
     "trainer.test_translate=32 must be smaller than the 32x32 images"),
    (["model=resnet", "model.bn_momentum=0.0"],
     "model.bn_momentum=0.0: resnet bn_momentum must be in (0, 1]"),
])
def test_bad_values_fail_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        validate(compose_config(overrides))
    assert message in str(info.value)


@pytest.mark.data
def test_the_whitened_stem_comes_from_the_normalised_training_images(cifar_root):
    overrides = ["model=resnet", "model.depth=8", "model.widths=[6,8,8]", "data.n_train=100",
                 "data.n_val=0", f"data.root={cifar_root}"]
    plain = build_run(compose_config(overrides))
    run = build_run(compose_config([*overrides, "init.whiten_first_conv=true"]))
    expected = whitening_filters(run.transform(run.splits.x_train), (3, 3), pairs=3)
    np.testing.assert_allclose(run.net.params["conv1.W"], expected, rtol=1e-4, atol=1e-6)
    # Everything else is drawn as without whitening.
    for key, value in plain.net.params.items():
        if key != "conv1.W":
            np.testing.assert_array_equal(run.net.params[key], value)
