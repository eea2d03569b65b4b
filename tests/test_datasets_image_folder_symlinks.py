"""data=image_folder says which symlinks it followed out of the folder and which it skipped
(issue 27: both happened silently)."""

import logging
from pathlib import Path

import pytest
from PIL import Image

from experiments.datasets import image_folder
from experiments.datasets.image_folder import prepare_image_folder, scan_class_folders


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    return path


@pytest.fixture
def warnings(caplog, monkeypatch):
    monkeypatch.setattr(image_folder.log, "disabled", False)  # an earlier logging config may have
    caplog.set_level(logging.WARNING, logger=image_folder.log.name)
    return lambda: [r.getMessage() for r in caplog.records if r.name == image_folder.log.name]


def test_file_symlinks_out_of_the_folder_are_named_as_followed(tmp_path, warnings):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    for name in ("cat", "dog"):
        image(root / name / "0.png")
    outside = image(elsewhere / "x.png")
    (root / "cat" / "linked.png").symlink_to(outside)
    (root / "cat" / "inside.png").symlink_to(root / "dog" / "0.png")  # stays in the folder

    splits = prepare_image_folder(root, image_size=8, test_fraction=0.34)
    assert len(splits.x_train) + len(splits.x_test) == 4  # the linked images are read
    [message] = warnings()
    assert f"{root}: followed 1 symlink to images outside the folder" in message
    assert f"{root}/cat/linked.png -> {outside}" in message
    assert "inside.png" not in message


def test_directory_symlinks_below_a_class_are_named_as_skipped(tmp_path, warnings):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    image(root / "cat" / "0.png")
    image(elsewhere / "more" / "1.png")
    (root / "cat" / "more").symlink_to(elsewhere / "more")
    (root / "cat" / "gone.png").symlink_to(tmp_path / "missing.png")
    (root / "dog").symlink_to(elsewhere / "more")  # a class folder: entered

    files, labels, names = scan_class_folders(root)
    assert names == ("cat", "dog")
    assert files == [root / "cat" / "0.png", root / "dog" / "1.png"]
    followed, skipped = warnings()
    assert f"followed 1 symlink to images outside the folder: {root}/dog -> " in followed
    assert f"{root}: skipped 2 symlinks, so the images there are not used" in skipped
    assert f"{root}/cat/more -> {elsewhere}/more" in skipped
    assert f"{root}/cat/gone.png -> {tmp_path}/missing.png (broken)" in skipped


def test_many_symlinks_are_counted_and_the_first_named(tmp_path, warnings):
    root = tmp_path / "root"
    image(root / "dog" / "0.png")
    outside = image(tmp_path / "x.png")
    for i in range(image_folder.SHOWN + 3):
        (root / "cat" / f"{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (root / "cat" / f"{i}.png").symlink_to(outside)

    scan_class_folders(root)
    [message] = warnings()
    assert f"followed {image_folder.SHOWN + 3} symlinks" in message
    assert message.endswith("; and 3 more") and message.count(" -> ") == image_folder.SHOWN


def test_a_class_only_behind_a_skipped_symlink_says_so_before_failing(tmp_path, warnings):
    root = tmp_path / "root"
    image(root / "dog" / "0.png")
    image(tmp_path / "elsewhere" / "1.png")
    (root / "cat").mkdir()
    (root / "cat" / "all").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Exception, match="holds no images"):
        scan_class_folders(root)
    assert any(f"{root}/cat/all -> " in m for m in warnings())


def test_a_folder_without_symlinks_warns_of_nothing(tmp_path, warnings):
    for name in ("cat", "dog"):
        image(tmp_path / name / "0.png")
    scan_class_folders(tmp_path)
    assert warnings() == []
