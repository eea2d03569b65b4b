"""A stop signal at any stage of a run's start, from before its row exists to its first
epoch, ends the command non-zero and leaves no run RUNNING and none FINISHED: a run
that was made ends KILLED (issue 27, point 1 and the acceptance's signal test).

Each case runs the real `python -m experiments.train` through tests/stage_signal.py,
which sends the signal at the nth call of one function (before or after it), so the
signal lands at the same stage every time. The cases share one store, an experiment
each; SIGINT, SIGTERM and SIGHUP take turns, and all three hit the stage where the run's
row exists before MLflow knows it as the active run."""

import signal
import subprocess

import pytest
from fixtures.harness import default_signals

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

TINY = ["model=seed", "data.n_train=300", "data.n_val=100", "trainer.epochs=2",
        "trainer.progress=false", "trainer.health_checks=false", "tracking.log_dataset=false"]
CREATE_ROW = "mlflow.store.tracking.sqlalchemy_store:SqlAlchemyStore.create_run"
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}

# (function, before/after its nth call, nth, whether the run's row exists by then: True,
# False, or None when either is right; the signals sent there).
STAGES = [
    ("experiments.runs.tracked:validate", "before", 1, False, ["SIGINT"]),
    (CREATE_ROW, "before", 1, None, ["SIGTERM"]),
    # The row made, MLflow not yet told it is the active run: the run was left RUNNING.
    (CREATE_ROW, "after", 1, True, list(SIGNALS)),
    # Before the handlers were in place: FINISHED by MLflow's exit hook, or RUNNING.
    ("mlflow:start_run", "after", 1, True, ["SIGHUP"]),
    ("mlflow:set_tags", "before", 1, True, ["SIGINT"]),
    ("experiments.runs.tracked:build_run", "after", 1, True, ["SIGTERM"]),
    ("experiments.runs.tracked:fit", "before", 1, True, ["SIGHUP"]),
    ("experiments.runs.callbacks:MetricsLogger.on_epoch_end", "after", 1, True, ["SIGINT"]),
]


def cases():
    for target, when, nth, made, sigs in STAGES:
        short = target.rsplit(":", 1)[1].rsplit(".", 1)[-1]
        for sig in sigs:
            yield pytest.param(target, when, nth, made, sig, id=f"{when}-{short}-{sig}")


@pytest.mark.parametrize(("target", "when", "nth", "made", "sig"), list(cases()))
def test_a_signal_at_any_stage_of_the_start_ends_no_run_running_or_finished(
        module_harness_cli, target, when, nth, made, sig):
    cli = module_harness_cli
    cli.client().search_experiments()  # the store's tables, made once for all the cases
    experiment = f"start-{when}-{target.replace(':', '.')}-{sig}"
    done = subprocess.run(
        cli.command("stage_signal", target, when, sig, str(nth), "experiments.train", *TINY,
                    f"tracking.experiment={experiment}"),
        cwd=cli.folder, env=cli.env, capture_output=True, text=True, timeout=300,
        preexec_fn=default_signals)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    client = cli.client()
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs([found.experiment_id])
    assert [r.info.status for r in runs if r.info.status != "KILLED"] == [], output
    if made is not None:
        assert len(runs) == int(made), output
    for run in runs:
        assert "interrupted" in run.data.tags.get("failure_reason", ""), output
