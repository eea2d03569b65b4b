"""A logged run's training diagnosis: how it ended read from its tags, the threshold its
momentum names, and the end-of-run tag, which never fails the run."""

import logging

import mlflow

from cnn.training import DivergenceError
from experiments.reporting import training_diagnosis as td


def test_a_diverged_run_is_read_from_its_failure_tags():
    end = td.run_end("FAILED", {"failure_reason": "loss became nan at epoch 2, step 5",
                                "failure_epoch": "2", "failure_step": "5",
                                "error_type": "DivergenceError"})
    assert (end.status, end.epoch, end.step, end.diverged) == ("FAILED", 2, 5, True)
    other = td.run_end("FAILED", {"failure_reason": "ValueError: bad", "error_type": "ValueError"})
    assert not other.diverged and other.epoch is None


def test_only_sgd_with_momentum_names_the_momentum_threshold():
    assert td.momentum_of({"optim.name": "sgd", "optim.momentum": "0.9"}) == 0.9
    assert td.momentum_of({"optim.name": "sgd", "optim.momentum": "0.0"}) is None
    assert td.momentum_of({"optim.name": "adam", "optim.momentum": "0.9"}) is None


def test_the_diagnosis_reads_the_loss_the_layers_and_the_sharpness():
    keys = ["train_loss", "val_acc", "relu2.dead_frac", "conv1.grad_norm", "conv1.act_std",
            "sharpness", "sharpness_threshold", "epoch_time_s"]
    assert td.diagnosed_keys(keys) == ["conv1.grad_norm", "relu2.dead_frac", "sharpness",
                                       "sharpness_threshold", "train_loss"]


def test_the_class_count_tag_sets_chance():
    series = {"train_loss": {1: 0.70, 2: 0.69, 3: 0.69}, "train_acc": {1: 0.5, 2: 0.5, 3: 0.5}}
    assert td.diagnose_logged(series, "FINISHED", {"num_classes": "2"}, {}).causes == (
        "plateau at chance")
    assert td.diagnose_logged(series, "FINISHED", {}, {}).causes == ""  # 10 classes: learned


def test_tagging_the_diagnosis_never_fails_the_run(monkeypatch, caplog):
    def away(*args, **kwargs):
        raise ConnectionError("tracking server away")

    monkeypatch.setattr(mlflow, "MlflowClient", away)
    with caplog.at_level(logging.WARNING):
        td.log_training_diagnosis("r1", DivergenceError(2, 5, float("nan")), 10)
    assert "could not tag run r1 with its training diagnosis: tracking server away" in caplog.text
