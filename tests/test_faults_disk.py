"""A full disk while checkpointing: the run ends FAILED with a reason naming the file, the
previous checkpoint is intact, and the run resumes from it once there is room."""

import pytest

from cnn import checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

RUN = ["model=seed", "trainer.progress=false", "trainer.health_checks=false",
       "tracking.log_dataset=false", "tracking.log_model=false", "data.n_train=100",
       "trainer.epochs=3", "trainer.batch_size=50", "tracking.run_name=full-disk"]

# experiments.train with the second checkpoint's write failing as on a full disk.
FULL_DISK = """
import sys
import numpy as np
real, calls = np.savez, []
def savez(f, **arrays):
    if "rng" in arrays:  # a checkpoint, not weights.npz
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
    return real(f, **arrays)
np.savez = savez
from experiments.train import main
sys.argv = ["experiments.train", *sys.argv[1:]]
main()
"""


def test_full_disk_fails_clearly_and_keeps_the_last_checkpoint(harness_cli):
    import subprocess
    import sys

    cli = harness_cli
    done = subprocess.run([sys.executable, "-c", FULL_DISK, *RUN], cwd=cli.folder, env=cli.env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    client = cli.client()
    [run] = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    local = cli.folder / "checkpoints" / run.info.run_id / "last.npz"
    assert run.info.status == "FAILED"
    assert run.data.tags["error_type"] == "CheckpointError"
    reason = run.data.tags["failure_reason"]
    assert f"could not write checkpoint {local}" in reason and "No space left" in reason
    assert checkpoint.load(local).epoch == 1  # the previous one, intact
    assert [p.name for p in local.parent.iterdir()] == ["last.npz"]

    done = cli.run("experiments.resume", run.info.run_id)
    assert done.returncode == 0, done.stderr
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    # Epoch 2 was logged before its checkpoint failed, and is logged again on resuming:
    # the same value at the same step (training is deterministic), nothing lost.
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == [1, 2, 2, 3]
    assert len({m.value for m in history if m.step == 2}) == 1
