"""Every model family through the harness: typed knobs composed from conf/model/, bad
values refused before a run exists, logged configs rebuilt, a tiny resnet trained, its
model served and its run reproduced exactly, and a custom network written in YAML."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
from omegaconf import OmegaConf

from cnn.models import ARCHITECTURES, build_model
from cnn.training import evaluate
from experiments.config import compose_config
from experiments.config.compose import config_from_container
from experiments.config.validate import ConfigError, validate
from experiments.runs.build import build_run

# A resnet-8 with 4, 8 and 8 channels on 300 images, 2 epochs: a few seconds of training,
# with the accuracy frontier's options on (a whitened stem, a weight average, test flips
# and shifts).
TINY_RESNET = ["model=resnet", "model.depth=8", "model.widths=[4,8,8]", "data.n_train=300",
               "data.n_val=100",
               "trainer.epochs=2", "trainer.batch_size=50", "trainer.progress=false",
               "trainer.health_checks=false", "tracking.log_dataset=false",
               "init.whiten_first_conv=true", "trainer.weight_average=0.9",
               "trainer.test_flip=true", "trainer.test_translate=1"]

# conf/model/ gets a file of the user's own: the layer list written in YAML.
TINY_CUSTOM_YAML = """\
defaults:
  - /schema/model/custom@_here_
  - _self_

layers:
  - {type: conv, out: 8, kernel: 3}
  - {type: batchnorm}
  - {type: relu}
  - {type: residual, out: 8}
  - {type: maxpool, size: 2}
  - {type: global_avgpool}
"""


@pytest.mark.parametrize("family", sorted(ARCHITECTURES))
def test_every_family_composes_with_its_typed_knobs_and_rebuilds_from_its_log(family):
    cfg = compose_config([f"model={family}"])
    validate(cfg)
    knobs = {k: v for k, v in OmegaConf.to_container(cfg.model).items() if k != "name"}
    assert cfg.model.name == family
    # The schema holds exactly the family's knobs, with its defaults.
    build_model(family, **knobs)
    rebuilt = config_from_container(OmegaConf.to_container(cfg, resolve=True))
    assert rebuilt.model == cfg.model


def test_configs_logged_before_families_had_knobs_still_rebuild():
    old = OmegaConf.to_container(compose_config(["model=vgg"]), resolve=True)
    old["model"] = {"name": "vgg"}  # what a run logged before this change
    cfg = config_from_container(old)
    assert OmegaConf.to_container(cfg.model) == {"name": "vgg", "widths": [32, 64, 128],
                                                 "norm": "batch", "dropout": 0.0}


@pytest.mark.parametrize(("overrides", "message"), [
    (["model=resnet", "model.depth=10"], "model.depth=10: resnet depth must be 6n+2"),
    (["model=plain", "model.norm=group"], "model.norm=group"),
    (["model=custom", "model.layers=[{type: conv}]"], "model.layers: custom layers[0]"),
    (["model=resnet", "model.name=vgg"], "model.name='vgg' does not match"),
])
def test_bad_knob_values_fail_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match="invalid config") as info:
        validate(compose_config(overrides))
    assert message in str(info.value)


@pytest.mark.slow  # no training: a harness process and a new MLflow store, ~5 s of CPU
def test_a_bad_knob_fails_before_any_run_is_created(harness_cli):
    done = harness_cli.run("experiments.train", "model=resnet", "model.depth=10")
    assert done.returncode != 0
    assert "model.depth=10" in done.stdout + done.stderr
    experiment = harness_cli.client().get_experiment_by_name("cifar10-cnn")
    assert experiment is None or not harness_cli.client().search_runs(
        [experiment.experiment_id])


def _runs(cli):
    client = cli.client()
    return client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])


@pytest.fixture(scope="module")
def tiny_resnet(module_harness_cli):
    done = module_harness_cli.run("experiments.train", *TINY_RESNET, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = _runs(module_harness_cli)
    assert run.info.status == "FINISHED"
    return run


@pytest.mark.slow  # trains the tiny resnet (module fixture)
def test_tiny_resnet_logs_block_statistics_and_its_architecture(tiny_resnet,
                                                                 module_harness_cli):
    metrics = tiny_resnet.data.metrics
    assert "watch.stage2.block1.conv1.grad_norm" in metrics
    assert "watch.stage2.block1.shortcut.conv.update_ratio" in metrics
    assert "watch.stage1.block1.act2.dead_frac" in metrics
    assert tiny_resnet.data.params["model.depth"] == "8"
    mlflow.set_tracking_uri(module_harness_cli.tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(tiny_resnet.data.tags["model_uri"]))
    meta = json.loads(next(local.rglob("model.json")).read_text())
    assert meta["architecture"] == "resnet"
    assert meta["knobs"] == {"depth": 8, "widths": [4, 8, 8], "norm": "batch",
                             "activation": "relu", "dropout": 0.0, "bn_momentum": 0.1}


@pytest.mark.slow  # trains the tiny resnet (module fixture)
def test_tiny_resnet_tests_and_saves_its_weight_average(tiny_resnet, module_harness_cli,
                                                       tmp_path):
    metrics = tiny_resnet.data.metrics
    for key in ("test_acc", "test_acc_without_average", "test_acc_without_flip",
                "test_acc_without_translate"):
        assert 0.0 <= metrics[key] <= 1.0, key
    mlflow.set_tracking_uri(module_harness_cli.tracking_uri)
    saved = np.load(mlflow.artifacts.download_artifacts(
        run_id=tiny_resnet.info.run_id, artifact_path="weights.npz", dst_path=str(tmp_path)))
    # The last checkpoint holds the trained weights; the saved ones are their average.
    trained = np.load(module_harness_cli.folder / "checkpoints" / tiny_resnet.info.run_id
                      / "last.npz")
    assert set(saved.files) == {k[len("net/"):] for k in trained.files if k.startswith("net/")}
    assert not np.allclose(saved["dense1.W"], trained["net/dense1.W"])


@pytest.mark.slow  # trains the tiny resnet (module fixture)
def test_tiny_resnet_logs_validation_measured_as_test_is(tiny_resnet, module_harness_cli,
                                                        tmp_path):
    # final_val_acc: the averaged weights with flips and shifts, as test_acc; its ablations
    # likewise, each without one of them.
    metrics = tiny_resnet.data.metrics
    root = module_harness_cli.env["CIFAR10_ROOT"]
    run = build_run(compose_config([*TINY_RESNET, f"data.root={root}"]))
    mlflow.set_tracking_uri(module_harness_cli.tracking_uri)
    averaged = np.load(mlflow.artifacts.download_artifacts(
        run_id=tiny_resnet.info.run_id, artifact_path="weights.npz", dst_path=str(tmp_path)))
    trained = np.load(module_harness_cli.folder / "checkpoints" / tiny_resnet.info.run_id
                      / "last.npz")

    def val_acc(state, flip: bool = True, translate: int = 1) -> float:
        run.net.load_state_dict(state)
        return evaluate(run.net, run.loss_fn, run.val_batches, flip=flip,
                        translate=translate).acc

    run.net.load_state_dict(dict(averaged))
    final = evaluate(run.net, run.loss_fn, run.val_batches, flip=True, translate=1)
    # The loss tells views and weights apart where 100 images' accuracies may tie.
    assert metrics["final_val_loss"] == pytest.approx(final.loss, rel=1e-6)
    for fewer_views in ({"flip": True}, {"translate": 1}):
        assert metrics["final_val_loss"] != pytest.approx(
            evaluate(run.net, run.loss_fn, run.val_batches, **fewer_views).loss, rel=1e-6)
    assert metrics["final_val_acc"] == final.acc
    assert metrics["final_val_acc_without_flip"] == val_acc(dict(averaged), flip=False)
    assert metrics["final_val_acc_without_translate"] == val_acc(dict(averaged), translate=0)
    trained_state = {k[len("net/"):]: v for k, v in trained.items() if k.startswith("net/")}
    assert metrics["final_val_acc_without_average"] == val_acc(trained_state)
    # The last epoch's val_acc is the trained weights without flips or shifts.
    assert metrics["val_acc"] == val_acc(trained_state, flip=False, translate=0)


@pytest.mark.slow  # trains the tiny resnet (module fixture)
def test_logged_resnet_predicts_and_a_model_without_knobs_still_loads(
        tiny_resnet, module_harness_cli, tmp_path):
    mlflow.set_tracking_uri(module_harness_cli.tracking_uri)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    probs = mlflow.pyfunc.load_model(f"runs:/{tiny_resnet.info.run_id}/model").predict(images)
    assert probs.shape == (5, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)

    # A seed model as the previous version logged it: model.json without "knobs".
    local = Path(mlflow.artifacts.download_artifacts(tiny_resnet.data.tags["model_uri"]))
    old = tmp_path / "old_model"
    shutil.copytree(local, old)
    meta_path = next(old.rglob("model.json"))
    meta = json.loads(meta_path.read_text())
    seed = build_model("seed", seed=3)
    seed.save(next(old.rglob("weights.npz")))
    del meta["knobs"]
    meta_path.write_text(json.dumps({**meta, "architecture": "seed"}))
    expected = seed.predict(mlflow.pyfunc.load_model(str(old)).unwrap_python_model()
                            .normalizer(images))
    assert np.allclose(mlflow.pyfunc.load_model(str(old)).predict(images), expected, atol=1e-6)


@pytest.mark.slow  # trains the tiny resnet, then again
def test_rerun_of_a_resnet_reproduces_its_metrics_exactly(tiny_resnet, module_harness_cli):
    done = module_harness_cli.run("experiments.rerun", tiny_resnet.info.run_id, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    client = module_harness_cli.client()
    (rerun,) = client.search_runs(
        [tiny_resnet.info.experiment_id],
        filter_string=f"tags.rerun_of = '{tiny_resnet.info.run_id}'")
    assert rerun.info.status == "FINISHED"
    for key in ("train_loss", "val_loss", "test_acc", "watch.stage3.block1.conv2.grad_norm"):
        if key not in tiny_resnet.data.metrics:
            continue
        first = [m.value for m in client.get_metric_history(tiny_resnet.info.run_id, key)]
        again = [m.value for m in client.get_metric_history(rerun.info.run_id, key)]
        assert first == again, key
    assert "differ" not in done.stderr


@pytest.mark.slow  # trains an epoch
def test_custom_layers_written_in_yaml_compose_train_log_and_predict(harness_cli):
    conf = harness_cli.folder / "my_conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "tiny_custom.yaml").write_text(TINY_CUSTOM_YAML)
    done = harness_cli.run("experiments.train", "--config-dir", str(conf), "model=tiny_custom",
                           *TINY_RESNET[3:], "trainer.epochs=1", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = _runs(harness_cli)
    assert run.info.status == "FINISHED" and run.data.params["model.name"] == "custom"
    assert "watch.res1.conv1.grad_norm" in run.data.metrics, sorted(run.data.metrics)
    mlflow.set_tracking_uri(harness_cli.tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    assert model.predict(images).shape == (3, 10)
    # The logged config rebuilds the same custom network.
    logged = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config/config.yaml")
    cfg = config_from_container(OmegaConf.to_container(OmegaConf.create(logged)))
    assert OmegaConf.to_container(cfg.model.layers)[3] == {"type": "residual", "out": 8}
