"""Configs: every group option composes and builds, the schemas reject mistakes, the
presets state the recipes exactly, and a config survives the trip through a logged file."""

import os
from pathlib import Path

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from experiments.config import ConfigError, compose_config, config_from_container, validate
from experiments.datasets.base import load_splits
from experiments.runs.build import build_run
from experiments.runs.tracked import default_run_name

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("model", "init", "optim", "schedule", "data", "trainer", "tracking")


def group_options() -> list[tuple[str, str]]:
    """Every (group, option) in conf/, found on disk so a new option is tested too."""
    return [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def test_every_group_has_options():
    found = {g for g, _ in group_options()}
    assert found == set(GROUPS)
    assert {"he", "xavier", "normal", "unit_normal"} <= {o for g, o in group_options()
                                                          if g == "init"}
    assert {"seed", "vgg"} <= {o for g, o in group_options() if g == "model"}


@pytest.fixture(scope="module")
def tiny_splits(cifar_root):
    # The root the fixture resolved, so the ../shared/data fallback works without the variable.
    cfg = compose_config(["data.n_train=40", "data.n_val=20", f"data.root={cifar_root}"])
    return load_splits(cfg, {"split": np.random.default_rng(0)})


@pytest.mark.data
@pytest.mark.parametrize(("group", "option"), group_options())
def test_every_option_composes_and_builds(group, option, tiny_splits):
    cfg = compose_config([f"{group}={option}", "data.n_train=40", "data.n_val=20"])
    assert OmegaConf.select(cfg, f"{group}") is not None
    validate(cfg)
    run = build_run(cfg, splits=tiny_splits)
    x, y = next(iter(run.train_batches))
    assert x.dtype == np.dtype(cfg.trainer.dtype) and x.shape[1:] == (32, 32, 3)
    probs = run.net.predict(x[:4])
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert run.schedule(0) > 0
    assert run.optimizer.lr == cfg.optim.lr


def test_choices_reach_the_built_objects(tiny_splits):
    cfg = compose_config(["model=vgg", "init=unit_normal", "optim=adamw", "schedule=onecycle",
                          "data=cifar10_aug", "data.augment.cutout=8", "trainer.batch_size=16",
                          "data.n_train=40", "data.n_val=20"])
    run = build_run(cfg, splits=tiny_splits)
    assert type(run.optimizer).__name__ == "AdamW"
    assert any(type(layer).__name__ == "BatchNorm2D" for layer in run.net.layers)
    # unit_normal draws weights with std 1.0, whatever the layer's width
    assert abs(float(run.net.layers[0].params["W"].std()) - 1.0) < 0.1
    assert run.augmenter is not None and run.augmenter.flip and run.augmenter.crop_pad == 4
    assert run.augmenter.cutout == 8
    assert run.steps_per_epoch == len(run.train_batches) == 3  # 40 images in batches of 16
    # one-cycle starts at lr / div_factor and peaks at lr
    peak = max(run.schedule(s) for s in range(run.total_steps))
    assert run.schedule(0) == pytest.approx(cfg.optim.lr / cfg.schedule.div_factor)
    assert peak == pytest.approx(cfg.optim.lr, rel=1e-2)  # steps fall near, not on, the peak


@pytest.mark.parametrize(("overrides", "message"), [
    (["optim.lrr=0.1"], "optim.lrr"),                  # a mistyped key
    (["trainer.epochs=ten"], "trainer.epochs"),        # a wrong type
    (["data.n_val=0.5"], "data.n_val"),
    (["optim=adam", "optim.momentum=0.9"], "optim.momentum"),  # a key of another optimiser
    (["data=digits", "data.url=file:///tmp/x.tar.gz"], "data.url"),  # CIFAR-10's own key
    (["init=he", "init.std=0.1"], "init.std"),  # a knob of another initialiser
])
def test_schema_rejects_mistakes_at_composition(overrides, message):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(overrides)
    text = str(info.value) + str(info.value.__cause__)
    assert message.split(".")[-1] in text


def test_preset_with_keys_of_another_optimiser_fails_clearly():
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["experiment=seed_subset", "optim=adam"])
    assert "momentum" in str(info.value) + str(info.value.__cause__)


def test_unknown_option_lists_the_available_ones():
    with pytest.raises(MissingConfigException) as info:
        compose_config(["model=resnet50"])
    assert all(name in str(info.value) for name in ("seed", "vgg", "plain", "resnet", "custom"))


@pytest.mark.parametrize(("overrides", "message"), [
    (["trainer.epochs=0"], "trainer.epochs must be >= 1"),
    (["optim.lr=-1"], "optim.lr must be > 0"),
    (["init.name=glorot"], "init.name='glorot'"),
    (["optim.name=adam"], "optim.name='adam' does not match"),
    (["data.augment.pad_mode=wrap"], "data.augment"),
    (["data.augment.crop_pad=40"], "data.augment.crop_pad=40 does not fit 32x32 images"),
    (["data=digits", "data.image_size=16", "data.augment.crop_pad=16"],
     "data.augment.crop_pad=16 does not fit 16x16 images"),
    (["data.augment.cutout=33"], "data.augment.cutout=33 is larger than the 32x32 images"),
    (["data.augment.cutout=-1"], "data.augment: cutout must be >= 0, got -1"),
    (["data.classes=[3,3]"], "data.classes"),
    (["data.classes=[12]"], "data.classes"),
    (["optim.lr=inf"], "optim.lr"),
    (["trainer.checkpoint_every=-1"], "trainer.checkpoint_every"),
    (["trainer.dtype=float16"], "trainer.dtype"),
    (["schedule=onecycle", "schedule.momentum_range=[0.95,0.85]"], "low <= high"),
    (["optim=adam", "schedule=onecycle", "schedule.momentum_range=[0.85,0.95]"],
     "needs an optimiser with momentum"),
    # issue 27: values that reached a run, or numpy's error naming no key
    (["optim.momentum=nan"], r"optim \(sgd\): momentum must be in \[0, 1\), got nan"),
    (["optim=adam", "optim.eps=0"], r"optim \(adam\): eps must be > 0"),
    (["model=custom", "model.layers=[{type: batchnorm, eps: -1.0}]"],
     r"model.layers: custom layers\[0\] \(batchnorm\): batch norm eps must be > 0"),
    (["model=custom", "model.layers=[{type: batchnorm, momentum: 2.0}]"],
     r"model.layers: custom layers\[0\] \(batchnorm\): batch norm momentum must be in"),
    (["lr_find.max_lr=inf"], "lr_find.max_lr=inf must be finite"),
    (["trainer.seed=-1"], "trainer.seed must be >= 0, got -1"),
    (["data.split_seed=-2"], "data.split_seed must be >= 0"),
])
def test_validate_names_the_bad_value(overrides, message):
    cfg = compose_config(overrides)
    pattern = message if "\\" in message else message.replace("(", r"\(")
    with pytest.raises(ConfigError, match=pattern):
        validate(cfg)


def _recipe(cfg):
    return dict(
        n_train=cfg.data.n_train, n_val=cfg.data.n_val, normalize=cfg.data.normalize,
        crop_pad=cfg.data.augment.crop_pad, pad_mode=cfg.data.augment.pad_mode,
        flip=cfg.data.augment.flip, optim=cfg.optim.name, lr=cfg.optim.lr,
        momentum=cfg.optim.momentum, nesterov=cfg.optim.nesterov,
        weight_decay=cfg.optim.weight_decay, schedule=cfg.schedule.name,
        pct_start=cfg.schedule.pct_start, warmup=cfg.schedule.warmup_epochs,
        momentum_range=cfg.schedule.momentum_range,
        batch_size=cfg.trainer.batch_size, epochs=cfg.trainer.epochs,
    )


def test_onecycle_momentum_range_reaches_the_schedule(tiny_splits):
    cfg = compose_config(["schedule=onecycle", "schedule.momentum_range=[0.85,0.95]",
                          "data.n_train=40", "data.n_val=20", "trainer.batch_size=8"])
    run = build_run(cfg, splits=tiny_splits)
    momenta = [run.schedule.momentum(s) for s in range(run.total_steps)]
    assert momenta[0] == pytest.approx(0.95) and min(momenta) == pytest.approx(0.85, abs=1e-3)


@pytest.mark.parametrize(("preset", "model", "n_val"), [
    ("seed_subset", "seed", 0), ("vgg_subset", "vgg", 0),
    # the full-data recipes: the same recipe, 5,000 of the 50,000 images held out
    ("seed_full", "seed", 5000), ("vgg_full", "vgg", 5000)])
def test_experiment_presets_state_the_recipe(preset, model, n_val):
    cfg = compose_config([f"experiment={preset}"])
    assert cfg.model.name == model and cfg.init.name == "pytorch"
    assert _recipe(cfg) == dict(
        n_train=None, n_val=n_val, normalize=True, crop_pad=4, pad_mode="reflect", flip=True,
        optim="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4,
        schedule="onecycle", pct_start=0.25, warmup=0.0, momentum_range=None,
        batch_size=128, epochs=30,
    )
    validate(cfg)


def _hydra_cfg(overrides):
    from hydra import compose, initialize_config_module

    from experiments.config import register_configs

    register_configs()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_convergence_sweep_preset():
    from hydra.types import RunMode

    cfg = _hydra_cfg(["sweep=convergence"])
    assert cfg.hydra.mode == RunMode.MULTIRUN  # `make sweep` needs no -m
    params = cfg.hydra.sweeper.params
    assert params["init"].split(",") == ["he", "xavier", "normal", "unit_normal"]
    assert len(params["optim.lr"].split(",")) == 3
    assert len(params["data.n_train"].split(",")) == 3
    assert cfg.model.name == "seed" and cfg.data.n_val > 0
    # the largest size plus the validation split must fit the 5,085-image subset
    assert max(int(n) for n in params["data.n_train"].split(",")) + cfg.data.n_val <= 5085
    assert [c._target_ for c in cfg.hydra.callbacks.values()] == [
        "experiments.sweeps.tracking.SweepTracking"]


def test_stability_sweep_preset_is_full_batch_gradient_descent_with_the_sharpness_measured():
    cfg = _hydra_cfg(["sweep=stability"])
    rates = [float(r) for r in cfg.hydra.sweeper.params["optim.lr"].split(",")]
    assert len(rates) >= 3 and rates == sorted(rates)
    assert cfg.trainer.batch_size == cfg.data.n_train == cfg.trainer.sharpness_images
    assert cfg.optim.momentum == 0 and cfg.schedule.name == "constant"
    assert cfg.optim.weight_decay == 0 and cfg.trainer.sharpness_every > 0
    assert cfg.model.name == "seed"  # no batch norm: a full batch is one function
    job = config_from_container({k: v for k, v in cfg.items() if k != "hydra"})
    validate(job)


def test_learning_curve_sweep_preset_only_sweeps():
    cfg = _hydra_cfg(["sweep=learning_curve"])
    params = cfg.hydra.sweeper.params
    assert params["data.n_train"] == "500,1000,2000,4000"
    assert params["trainer.seed"] == "0,1,2"
    # it sweeps sizes and seeds only, so it composes with a preset's recipe
    combined = _hydra_cfg(["sweep=learning_curve", "experiment=seed_subset"])
    assert combined.trainer.epochs == 30 and combined.schedule.name == "onecycle"


def test_full_data_learning_curve_preset_reaches_the_whole_training_set():
    cfg = _hydra_cfg(["sweep=learning_curve_full", "experiment=seed_full"])
    sizes = [int(n) for n in cfg.hydra.sweeper.params["data.n_train"].split(",")]
    assert cfg.hydra.sweeper.params["trainer.seed"] == "0,1,2"
    # the largest size is every image the validation split leaves of the official 50,000
    assert max(sizes) + cfg.data.n_val == 50_000 and sizes == sorted(sizes)
    for n in (max(sizes), 50_000):  # and with no validation split, all 50,000
        validate(compose_config(["experiment=seed_full", f"data.n_train={n}",
                                 f"data.n_val={50_000 - n}"]))


def test_logged_config_round_trip():
    cfg = compose_config(["optim=adam", "schedule=step", "data.classes=[3,5]",
                          "data.n_train=100"])
    text = OmegaConf.to_yaml(cfg, resolve=True)
    again = config_from_container(OmegaConf.to_container(OmegaConf.create(text)))
    assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)
    assert OmegaConf.get_type(again.optim).__name__ == "AdamConfig"
    broken = OmegaConf.to_container(cfg)
    broken["optim"]["momentum"] = 0.9
    with pytest.raises(Exception, match="momentum"):
        config_from_container(broken)


def test_configs_logged_before_inits_and_datasets_had_own_schemas_still_rebuild():
    from cnn.data import OFFICIAL_MD5, OFFICIAL_URL

    old = OmegaConf.to_container(compose_config(["data=digits"]), resolve=True)
    # What every run logged then: init.std for all initialisers, CIFAR-10's keys for all data.
    old["init"]["std"] = None
    old["data"].update(root=None, download=False, url=OFFICIAL_URL, md5=OFFICIAL_MD5)
    cfg = config_from_container(old)
    assert "std" not in cfg.init and "url" not in cfg.data and cfg.data.name == "digits"
    old["init"]["std"] = 0.5  # a value that meant something is not dropped
    with pytest.raises(Exception, match="std"):
        config_from_container(old)


def test_default_run_name():
    cfg = compose_config(["optim.lr=0.03", "data.n_train=2500"])
    assert default_run_name(cfg) == "seed-he-lr0.03-n2500-s0"
    assert default_run_name(compose_config(["model=vgg", "init=xavier"])) == \
        "vgg-xavier-lr0.03-nall-s0"


@pytest.mark.data
def test_build_run_is_reproducible_and_streams_are_independent(cifar_root):
    base = ["data.n_train=200", "data.n_val=50", "trainer.batch_size=32"]
    first, second = build_run(compose_config(base)), build_run(compose_config(base))
    for key, value in first.net.params.items():
        np.testing.assert_array_equal(value, second.net.params[key])
    assert first.splits.digest() == second.splits.digest()
    x1, y1 = next(iter(first.train_batches))
    x2, y2 = next(iter(second.train_batches))
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    # Augmentation draws from its own stream: switching it on leaves the shuffle order alone.
    flipped = build_run(compose_config([*base, "data.augment.flip=true"]))
    _, y3 = next(iter(flipped.train_batches))
    np.testing.assert_array_equal(y1, y3)
    # Another seed: other weights, other split.
    other = build_run(compose_config([*base, "trainer.seed=1"]))
    assert not np.array_equal(other.net.params["conv1.W"], first.net.params["conv1.W"])
    assert other.splits.digest() != first.splits.digest()


def _make_command(target: str, *variables: str) -> list[str]:
    """The train command `make -n <target>` would run, as its arguments after `python`."""
    import shlex
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    # As a user types it: not inside `make test ARGS=...`, whose command-line variables
    # make exports to what it runs (ARGS in the environment, and MAKEFLAGS).
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "ARGS")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    done = subprocess.run(["make", "-n", "-s", target, *variables], cwd=repo, env=env,
                          capture_output=True, text=True, check=True)
    lines = done.stdout.replace("\\\n", " ").splitlines()
    command = next(line for line in lines if "experiments.train" in line)
    args = shlex.split(command)
    return args[args.index("-m") :]


@pytest.mark.parametrize(("recipe", "timeout"), [("seed_full", 120), ("vgg_full", 600),
                                                    ("frontier_full", 600)])
def test_full_seeds_target_submits_three_seeds_to_slurm(recipe, timeout):
    args = _make_command("full-seeds", f"RECIPE={recipe}", "URI=http://mlflow.lab:5000",
                         "DATA=/shared/cifar10", "PARTITION=lab")
    assert args[:4] == ["-m", "experiments.train", "-m", f"experiment={recipe}"]
    overrides = args[3:]
    assert "trainer.seed=0,1,2" in overrides  # the multirun: one array job per seed
    cfg = _hydra_cfg([o if o != "trainer.seed=0,1,2" else "trainer.seed=2" for o in overrides])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "lab" and cfg.hydra.launcher.timeout_min == timeout
    assert cfg.hydra.launcher.setup[0].startswith("source /") and cfg.data.n_val == 5000
    assert (cfg.tracking.uri, cfg.data.root) == ("http://mlflow.lab:5000", "/shared/cifar10")
    validate(compose_config([o for o in overrides if not o.startswith(("hydra", "trainer.seed"))]
                            + ["trainer.seed=2"]))


def test_full_seeds_target_needs_the_server_and_the_data():
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(["make", "-s", "full-seeds", "STAMP="], cwd=repo,
                          capture_output=True, text=True)
    assert done.returncode != 0 and "usage: make full-seeds" in done.stderr
