"""One pass from config to run: a tracked run validates its config once and builds its
network once before training; validation itself builds nothing."""

import importlib

import pytest

import cnn.network
import experiments.runs.tracked
from experiments.config import compose_config, validate

# The module, not the function experiments.config re-exports under the same name.
validation = importlib.import_module("experiments.config.validate")


@pytest.fixture
def counted(monkeypatch):
    """Counts of networks built (Sequential constructed; a deepcopy, as the health checks
    make, constructs none) and of validations, as they stand when training starts."""
    counts = {"networks": 0, "validations": 0, "at_fit": None}
    init, check_trainer = cnn.network.Sequential.__init__, validation._check_trainer

    def counting_init(self, *args, **kwargs):
        counts["networks"] += 1
        init(self, *args, **kwargs)

    def counting_check(*args, **kwargs):  # called once by every validate()
        counts["validations"] += 1
        check_trainer(*args, **kwargs)

    fit = experiments.runs.tracked.fit

    def counting_fit(*args, **kwargs):
        counts["at_fit"] = dict(networks=counts["networks"], validations=counts["validations"])
        return fit(*args, **kwargs)

    monkeypatch.setattr(cnn.network.Sequential, "__init__", counting_init)
    monkeypatch.setattr(validation, "_check_trainer", counting_check)
    monkeypatch.setattr(experiments.runs.tracked, "fit", counting_fit)
    return counts


def test_validation_builds_no_network(counted):
    for model in ("seed", "vgg", "resnet", "custom"):
        validate(compose_config([f"model={model}"]))
    assert counted["networks"] == 0 and counted["validations"] == 4


@pytest.mark.data
@pytest.mark.mlflow
def test_a_tracked_run_validates_once_and_builds_its_network_once(counted, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)  # checkpoints/ and mlruns/ go here
    cfg = compose_config(["data.n_train=50", "trainer.epochs=1", "trainer.batch_size=25",
                          "trainer.progress=false", "tracking.log_model=false",
                          "tracking.log_dataset=false", f"tracking.uri=sqlite:///{tmp_path}/m.db"])
    outcome = experiments.runs.tracked.train_and_log(cfg)
    assert outcome.test_acc is not None and len(outcome.history) == 1
    # The health checks ran on deep copies of the one network (trainer.health_checks).
    assert counted["at_fit"] == {"networks": 1, "validations": 1}
