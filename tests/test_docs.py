"""The user-facing pages stay true: README.md, experiments/README.md, docs/*.md and the
tutorial's text. Every `make` target they name is in the Makefile, every config option
(`model=vgg`, `SWEEP=depth`) is a file in conf/, every config key (`trainer.sharpness_every`,
`hydra.launcher.n_jobs`) is in the config composed with some option of its group, every
link and anchor resolves, the README keeps to 250 lines with its pictures, and no page
names the folder this project's data happens to sit in on the developers' machines.

Names are read where a reader copies them: inline code and shell blocks, not Python or
YAML blocks (whose `model.predict(...)` is Python, not a config key)."""

import json
import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO / "README.md", REPO / "experiments" / "README.md",
                *(REPO / "docs").glob("*.md")])
TUTORIAL = REPO / "docs" / "tutorial.ipynb"
GROUPS = ("model", "init", "optim", "schedule", "data", "trainer", "tracking", "experiment",
          "sweep", "hydra/launcher")
KEY_ROOTS = ("model", "init", "optim", "schedule", "data", "trainer", "tracking", "lr_find",
             "search", "hydra")
# Keys the pages show on purpose as mistakes the schemas refuse.
REFUSED_ON_PURPOSE = {"optim.lrr"}
MAKE_VARIABLE_GROUPS = {"SWEEP": "sweep", "RECIPE": "experiment"}
# `lr_find.py`, `data.md`: files named like keys.
FILE_SUFFIXES = {"py", "md", "yaml", "png", "csv", "json", "txt", "npz", "ipynb"}


def _name(page: Path) -> str:
    return str(page.relative_to(REPO))


def _text(page: Path) -> str:
    """A page's text; for the notebook, its markdown cells."""
    if page.suffix == ".ipynb":
        cells = json.loads(page.read_text())["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return page.read_text()


def copied_code(text: str) -> str:
    """What a reader copies: inline code spans and fenced blocks other than python/yaml."""
    parts, rest = [], text
    for block in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
        if block[1] not in ("python", "yaml"):
            parts.append(block[2])
    rest = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    parts += re.findall(r"`([^`\n]+)`", rest)
    return "\n".join(parts)


def make_targets(code: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])make ([a-z][\w-]*)", code))


def group_options(code: str) -> set[tuple[str, str]]:
    found = {(g, o) for g, o in re.findall(
        r"(?<![\w.+/-])(" + "|".join(map(re.escape, GROUPS)) + r")=([a-z][\w]*)", code)}
    found |= {(MAKE_VARIABLE_GROUPS[v], o) for v, o in re.findall(
        r"\b(" + "|".join(MAKE_VARIABLE_GROUPS) + r")=([a-z][\w]*)", code)}
    return found


def config_keys(code: str) -> set[str]:
    """Dotted keys under a config root; not after `+` (an addition) nor before `(`."""
    pattern = (r"(?<![\w.+/$-])((?:" + "|".join(KEY_ROOTS) + r")(?:\.[A-Za-z_]\w*)+)(?![\w(])")
    return {k for k in re.findall(pattern, code) if k.rsplit(".", 1)[1] not in FILE_SUFFIXES}


def test_the_readers_names_are_found():
    """The extraction above finds what the pages name (else every test below is vacuous)."""
    code = "\n".join(copied_code(_text(p)) for p in PAGES)
    assert {"train", "sweep", "ui", "test-fast", "docs-images"} <= make_targets(code)
    assert {("model", "resnet"), ("sweep", "depth"), ("hydra/launcher", "slurm")} <= \
        group_options(code)
    assert {"trainer.sharpness_every", "data.n_train", "hydra.launcher.n_jobs",
            "lr_find.apply", "search.seeds"} <= config_keys(code)
    assert config_keys("`model.predict(x)` `+optim.lrr=1` `lr_find.py` `trainer.seed=0`") \
        == {"trainer.seed"}


@cache
def _makefile_targets() -> frozenset[str]:
    return frozenset(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("page", PAGES + [TUTORIAL], ids=_name)
def test_every_make_target_named_exists(page):
    missing = make_targets(copied_code(_text(page))) - _makefile_targets()
    assert not missing, f"{_name(page)} names make targets the Makefile lacks: {missing}"


@pytest.mark.parametrize("page", PAGES + [TUTORIAL], ids=_name)
def test_every_config_option_named_exists(page):
    text = _text(page)
    # An option the page tells the reader to write (`conf/optim/signsgd.yaml`,
    # `my_conf/model/small_resnet.yaml`) is one of theirs.
    missing = {f"{g}={o}" for g, o in group_options(copied_code(text))
               if not (REPO / "conf" / g / f"{o}.yaml").is_file()
               and not re.search(rf"\w/{re.escape(g)}/{o}\.yaml", text)}
    assert not missing, f"{_name(page)} names options with no file in conf/: {missing}"


@cache
def _composed(overrides: tuple[str, ...]):
    from hydra import compose, initialize_config_module

    from experiments.config import register_configs

    register_configs()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def _candidates(key: str) -> list[tuple[str, ...]]:
    """The configs a key may live in: the default, then each option of its group."""
    root = key.split(".")[0]
    if root == "hydra":
        groups = ["hydra/launcher", "sweep"]
    elif (REPO / "conf" / root).is_dir():
        groups = [root]
    else:
        groups = []  # lr_find, search: keys of the primary config itself
    return [()] + [(f"{g}={p.stem}",) for g in groups
                   for p in sorted((REPO / "conf" / g).glob("*.yaml"))]


def _exists(key: str) -> bool:
    from omegaconf import OmegaConf

    absent = object()
    return any(OmegaConf.select(_composed(c), key, default=absent) is not absent
               for c in _candidates(key))


@pytest.mark.parametrize("page", PAGES + [TUTORIAL], ids=_name)
def test_every_config_key_named_exists(page):
    keys = config_keys(copied_code(_text(page))) - REFUSED_ON_PURPOSE
    missing = sorted(k for k in keys if not _exists(k))
    assert not missing, f"{_name(page)} names config keys no composed config has: {missing}"


def test_a_key_no_config_has_is_found_missing():
    assert _exists("trainer.sharpness_every") and _exists("hydra.sweeper.n_trials")
    assert not _exists("trainer.sharpnes_every") and not _exists("optim.lrr")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_link_resolves(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http://, mailto:
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert not broken, f"{_name(page)} links to what does not exist: {broken}"


def test_the_slug_is_githubs():
    assert _slug("The depth study: `make sweep SWEEP=depth`") == \
        "the-depth-study-make-sweep-sweepdepth"
    assert _slug("This page's own timings") == "this-pages-own-timings"


def test_the_readme_is_short_and_shows_its_pictures():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    pictures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    assert len(pictures) >= 3
    for picture in pictures:
        assert (REPO / picture).stat().st_size < 150_000, picture


@pytest.mark.parametrize("page", PAGES + [TUTORIAL], ids=_name)
def test_no_page_names_the_developers_data_folder(page):
    text = page.read_text()
    assert "../shared" not in text and "/work/" not in text, _name(page)
