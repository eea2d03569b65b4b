"""data=image_folder: images of any size, mode and format become the network's input, with
their labels, split by folder or by a stratified, seeded fraction; and a run builds on them."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn.data.errors import CorruptDatasetError, DatasetNotFoundError
from experiments.config import ConfigError, compose_config, validate
from experiments.datasets.image_folder import prepare_image_folder
from experiments.datasets.images import load_image
from experiments.runs.build import build_run

# One colour per class, so a label can be read back from the pixels; their greys differ too.
COLOURS = {"apple": (230, 40, 40), "grass": (30, 200, 40), "sky": (40, 60, 210)}
# (size, mode, suffix): every class gets all of them, so modes and formats mix in each split.
VARIANTS = [((40, 20), "RGB", ".png"), ((7, 9), "L", ".png"), ((64, 48), "RGBA", ".png"),
            ((33, 33), "P", ".png"), ((50, 30), "RGB", ".jpg"), ((16, 16), "RGB", ".jpeg")]


def write_image(path: Path, size: tuple[int, int], mode: str, colour: tuple[int, int, int]):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    if mode == "L":
        image = image.convert("L")
    elif mode == "RGBA":
        image = image.convert("RGBA")
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    image.save(path)


def make_folder(root: Path, per_class: int = len(VARIANTS)) -> Path:
    for name, colour in COLOURS.items():
        for i in range(per_class):
            size, mode, suffix = VARIANTS[i % len(VARIANTS)]
            write_image(root / name / f"{i:02d}{suffix}", size, mode, colour)
    return root


def label_from_pixels(image: np.ndarray) -> int:
    """The class whose colour, or its grey (mode L), is nearest the image's mean colour."""
    mean = image.reshape(-1, 3).mean(axis=0)

    def distance(colour) -> float:
        grey = np.dot(colour, (0.299, 0.587, 0.114))  # Pillow's RGB -> L weights
        return min(np.abs(mean - np.array(colour)).sum(), np.abs(mean - grey).sum())

    return int(np.argmin([distance(c) for c in COLOURS.values()]))


def test_every_mode_and_format_becomes_rgb_of_the_asked_size(tmp_path):
    for size, mode, suffix in VARIANTS:
        path = tmp_path / f"{mode}{suffix}"
        write_image(path, size, mode, COLOURS["apple"])
        image = load_image(path, (32, 32, 3))
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8, (mode, suffix)
        if mode == "L":  # grey: three equal channels
            assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
        else:  # the colour survives palette, alpha and JPEG, within compression error
            np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), COLOURS["apple"], atol=8)
    assert load_image(tmp_path / "RGB.png", (20, 12, 3)).shape == (20, 12, 3)  # H, W


def test_transparent_pixels_become_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # red, but fully transparent
    image.putpixel((0, 0), (0, 0, 255, 255))  # one opaque blue pixel
    image.save(tmp_path / "a.png")
    array = load_image(tmp_path / "a.png", (4, 4, 3))
    assert tuple(array[0, 0]) == (0, 0, 255)
    assert (array[1:, :] == 255).all()


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(CorruptDatasetError, match="broken.png"):
        load_image(bad, (32, 32, 3))
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "absent.png", (32, 32, 3))


def test_fraction_split_is_stratified_labelled_and_fixed(tmp_path):
    root = make_folder(tmp_path / "images", per_class=10)
    (root / "apple" / "notes.txt").write_text("not an image")  # skipped, as other tools do
    write_image(root / "apple" / ".hidden.png", (8, 8), "RGB", (0, 0, 0))  # skipped too
    splits = prepare_image_folder(root, test_fraction=0.3, n_val=3, seed=1)
    assert splits.class_names == ("apple", "grass", "sky")  # sorted folder names
    assert splits.source == root.resolve()
    assert splits.x_train.shape == (18, 32, 32, 3) and splits.x_train.dtype == np.uint8
    assert splits.x_val.shape == (3, 32, 32, 3) and splits.x_test.shape == (9, 32, 32, 3)
    assert np.bincount(splits.y_test).tolist() == [3, 3, 3]
    assert splits.y_train.dtype == np.int64
    for x, y in ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val),
                 (splits.x_test, splits.y_test)):
        assert [label_from_pixels(image) for image in x] == y.tolist()
    # Another seed draws another validation set, but the test images stay the same.
    other = prepare_image_folder(root, test_fraction=0.3, n_val=3, seed=2)
    np.testing.assert_array_equal(other.x_test, splits.x_test)
    assert other.digest() != splits.digest()
    assert prepare_image_folder(root, test_fraction=0.3, n_val=3, seed=1).digest() == \
        splits.digest()


def test_train_and_test_folders_split_by_folder(tmp_path):
    root = tmp_path / "images"
    make_folder(root / "train", per_class=4)
    for name, colour in COLOURS.items():
        if name != "grass":  # a test folder may lack a class
            write_image(root / "test" / name / "x.jpg", (20, 10), "RGB", colour)
    splits = prepare_image_folder(root, test_fraction=0.5, image_size=16)
    assert splits.x_train.shape == (12, 16, 16, 3)  # test_fraction is not used
    assert splits.y_test.tolist() == [0, 2]  # apple, sky in the training set's numbering
    assert [label_from_pixels(image) for image in splits.x_test] == [0, 2]
    # A test class the training folder lacks cannot be labelled.
    write_image(root / "test" / "zebra" / "z.png", (8, 8), "RGB", (0, 0, 0))
    with pytest.raises(CorruptDatasetError, match="zebra"):
        prepare_image_folder(root)


def test_classes_and_sizes_select_images(tmp_path):
    root = make_folder(tmp_path / "images", per_class=6)
    splits = prepare_image_folder(root, classes=[2, 0], n_train=4, test_fraction=0.5)
    assert splits.class_names == ("sky", "apple")
    assert len(splits.x_train) == 4 and np.bincount(splits.y_train).tolist() == [2, 2]
    assert [label_from_pixels(image) for image in splits.x_test] == \
        [2 if y == 0 else 0 for y in splits.y_test]
    with pytest.raises(ValueError, match="data.classes"):
        prepare_image_folder(root, classes=[3])


def test_layout_errors_name_the_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="data.root"):
        prepare_image_folder(None)
    with pytest.raises(DatasetNotFoundError, match="no such folder"):
        prepare_image_folder(tmp_path / "absent")
    (tmp_path / "flat").mkdir()
    write_image(tmp_path / "flat" / "a.png", (8, 8), "RGB", (0, 0, 0))
    with pytest.raises(DatasetNotFoundError, match="no class sub-folders"):
        prepare_image_folder(tmp_path / "flat")
    root = make_folder(tmp_path / "images", per_class=2)
    (root / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="empty holds no images"):
        prepare_image_folder(root)


def test_a_single_class_is_refused_naming_the_folder(tmp_path):
    root = tmp_path / "one"
    for i in range(4):
        write_image(root / "cats" / f"{i}.png", (8, 8), "RGB", (200, 0, 0))
    with pytest.raises(ValueError, match=f"{root} has one class sub-folder \\(cats\\)"):
        prepare_image_folder(root)
    with pytest.raises(ConfigError, match=r"data.classes=\[1\] keeps one class"):
        validate(compose_config(["data=image_folder", f"data.root={root}",
                                 "data.classes=[1]"]))


@pytest.mark.slow
@pytest.mark.mlflow
def test_a_single_class_folder_fails_before_any_run(harness_cli, tmp_path):
    root = tmp_path / "one"
    for i in range(4):
        write_image(root / "cats" / f"{i}.png", (8, 8), "RGB", (200, 0, 0))
    done = harness_cli.run("experiments.train", "data=image_folder", f"data.root={root}",
                           "model=seed", "trainer.epochs=1", "trainer.progress=false",
                           "trainer.health_checks=false")
    assert done.returncode != 0
    assert f"{root} has one class sub-folder" in done.stderr, done.stderr
    assert harness_cli.client().search_runs(
        [e.experiment_id for e in harness_cli.client().search_experiments()]) == []


def test_a_run_builds_with_the_folder_shape_and_classes(tmp_path):
    root = make_folder(tmp_path / "images", per_class=6)
    cfg = compose_config(["data=image_folder", f"data.root={root}", "data.image_size=16",
                          "data.test_fraction=0.5", "data.n_val=3", "model=vgg",
                          "data.augment.crop_pad=2", "data.augment.flip=true",
                          "trainer.batch_size=4"])
    run = build_run(cfg)
    assert run.net.input_shape == (16, 16, 3)
    assert run.splits.num_classes == 3 and run.splits.class_names == ("apple", "grass", "sky")
    x, y = next(iter(run.train_batches))  # normalised and augmented at 16 x 16
    assert x.shape == (4, 16, 16, 3) and x.dtype == np.float32
    probs = run.net.predict(x)
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_schema_keeps_each_dataset_to_its_keys():
    from hydra.errors import ConfigCompositionException

    from experiments.config import ConfigError, validate

    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["data=image_folder", "data.path=/x"])
    assert "path" in str(info.value) + str(info.value.__cause__)
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["data.image_size=64"])  # CIFAR-10 has no image size to choose
    assert "image_size" in str(info.value) + str(info.value.__cause__)
    with pytest.raises(ConfigError, match="data.test_fraction must be in"):
        validate(compose_config(["data=image_folder", "data.test_fraction=0"]))
    with pytest.raises(ConfigCompositionException) as info:  # CIFAR-10's key, not its
        compose_config(["data=image_folder", "data.download=true"])
    assert "download" in str(info.value) + str(info.value.__cause__)
    with pytest.raises(ConfigError, match="choose it with `data=image_folder`"):
        validate(compose_config(["data.name=image_folder"]))
