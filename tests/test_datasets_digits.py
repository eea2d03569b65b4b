"""data=digits: scikit-learn's 8x8 digits scaled up to the network's input, split by a fixed
stratified fraction; a full run through `python -m experiments.train` learns them."""

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException

from experiments.config import compose_config
from experiments.datasets.digits import prepare_digits
from experiments.runs.build import build_run


def test_digits_are_rgb_images_of_the_asked_size():
    splits = prepare_digits(n_val=100, seed=3)
    assert splits.class_names == tuple("0123456789")
    assert splits.x_train.dtype == np.uint8 and splits.x_train.shape[1:] == (32, 32, 3)
    total = len(splits.x_train) + len(splits.x_val) + len(splits.x_test)
    assert total == 1797 and len(splits.x_val) == 100 and len(splits.x_test) == 359
    assert np.bincount(splits.y_test).min() >= 35  # stratified: about 36 of each digit
    assert splits.source.name == "digits.csv.gz" and splits.source.is_file()
    # Dark ink on white, like a digit on paper; grey, so the three channels agree.
    assert (splits.x_train[:, 0, 0] == 255).all()
    assert splits.x_train.min() < 30
    np.testing.assert_array_equal(splits.x_train[..., 0], splits.x_train[..., 2])
    # The test set does not move with the seed; the validation set does.
    other = prepare_digits(n_val=100, seed=4)
    np.testing.assert_array_equal(other.x_test, splits.x_test)
    assert not np.array_equal(other.y_val, splits.y_val) or \
        not np.array_equal(other.x_val, splits.x_val)


def test_digits_scale_from_the_8x8_originals():
    from sklearn.datasets import load_digits

    small = prepare_digits(image_size=8, test_fraction=0.5)
    assert small.x_test.shape[1:] == (8, 8, 3)
    originals = {tuple(np.rint(255 - im * 255 / 16).astype(np.uint8).ravel())
                 for im in load_digits().images}
    # At 8x8 no resampling happens: every image is an original, exactly.
    assert all(tuple(im[..., 0].ravel()) in originals for im in small.x_test[:20])
    assert prepare_digits(image_size=20, classes=[7, 1]).class_names == ("7", "1")


def test_the_network_takes_its_shape_and_classes_from_the_digits():
    cfg = compose_config(["data=digits", "data.image_size=16", "data.classes=[3,5,8]",
                          "model=vgg", "trainer.batch_size=8"])
    run = build_run(cfg)
    assert run.net.input_shape == (16, 16, 3) and run.splits.num_classes == 3
    x, _ = next(iter(run.train_batches))
    assert run.net.predict(x).shape == (8, 3)


def test_digits_read_no_folder():
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["data=digits", "data.root=/somewhere"])
    assert "root" in str(info.value) + str(info.value.__cause__)


@pytest.mark.slow
@pytest.mark.mlflow
def test_a_full_digits_run_reaches_90_percent(digits_run):
    run = digits_run.run
    assert run.data.metrics["test_acc"] >= 0.90, digits_run.output
    assert run.data.params["data.name"] == "digits"
    assert run.data.params["data.image_size"] == "32"
    names = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert len(names) == 2  # training and test images (no validation split)
    # each part's digest is the harness's own (sha256 of the arrays read in place)
    digests = {d.dataset.digest for d in run.inputs.dataset_inputs}
    assert len(digests) == 2 and all(len(d) == 8 and int(d, 16) >= 0 for d in digests)
    summary = digits_run.cli.client().download_artifacts(run.info.run_id, "model_summary.txt",
                                                         str(digits_run.cli.folder))
    with open(summary) as f:
        text = f.read()
    assert "input" in text and "(32, 32, 3)" in text and "->10," in text  # ten digits


def test_a_logged_digits_config_rebuilds_with_its_schema():
    from omegaconf import OmegaConf

    from experiments.config import config_from_container

    cfg = compose_config(["data=digits", "data.image_size=16", "data.test_fraction=0.3"])
    again = config_from_container(OmegaConf.to_container(cfg, resolve=True))
    assert OmegaConf.get_type(again.data).__name__ == "DigitsDataConfig"
    assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)
