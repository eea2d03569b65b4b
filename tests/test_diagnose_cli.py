"""`make diagnose` says what it diagnosed before its verdict (issue 22, point 5): the model
with its knobs, the initialiser, the optimiser with its rate, momentum and weight decay,
the batch size and the data size, on the terminal and in the run folder."""

import pytest

pytestmark = [pytest.mark.data, pytest.mark.slow]  # the memorisation check trains 200 steps

OVERRIDES = [
    "model=custom", "model.layers=[{type: conv, out: 8}, {type: relu}, {type: global_avgpool}]",
    "init=xavier", "optim.lr=0.01", "optim.momentum=0.5", "optim.weight_decay=0.0001",
    "trainer.batch_size=32", "data.n_train=200",
]


def test_diagnose_names_the_model_init_optimiser_batch_and_data_first(harness_cli):
    done = harness_cli.run("experiments.diagnose", "hydra.run.dir=diagnosed", *OVERRIDES)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    head, _, rest = out.partition("\n\n")
    assert "health:" in rest and "layer" in rest and "health:" not in head  # before the rest
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1] for line in head.splitlines()
             if ":" in line}
    assert "custom" in lines["model"] and "{type: conv, out: 8}" in lines["model"]
    assert "{type: global_avgpool}" in lines["model"] and "parameters" in lines["model"]
    assert "xavier" in lines["init"]
    optimiser = lines["optimiser"]
    assert "sgd" in optimiser and "lr=0.01" in optimiser and "momentum=0.5" in optimiser
    assert "weight_decay=0.0001" in optimiser
    assert "32" in lines["batch size"]
    assert "cifar10" in lines["data"] and "200 training images" in lines["data"]
    assert "128" in lines["data"] or "first" in lines["data"]  # what the checks looked at
    # Where the command logs (its run folder), the same report, header first.
    logged = (harness_cli.folder / "diagnosed" / "health_report.txt").read_text()
    assert logged.startswith(head) and "health:" in logged
