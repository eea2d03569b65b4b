"""What a sweep ends on in the terminal, and its parent run's summary metrics."""

from pathlib import Path

import pytest

from experiments.reporting.collect import RunSummary
from experiments.reporting.overview import parent_metrics, sweep_overview


def run(name, status, acc, health="pass", cause="-", failure="", loss=(2.0, 0.9), tags=None):
    return RunSummary(run_id=name, name=name, status=status, init="he", lr=0.03,
                      n_train="1000", seed="0", test_acc=acc, health=health,
                      health_cause=cause, failure=failure,
                      curves={"train_loss": list(loss), "train_acc": [0.1] * len(loss)},
                      tags={"failure_reason": failure, **(tags or {})})


GOOD = [run(f"good{i}", "FINISHED", 0.40 + i / 100) for i in range(8)]  # 0.40 .. 0.47
STALLED = run("stalled", "FINISHED", 0.10, "fail", "initial weights far too large",
              loss=(2.31, 2.303))
DIVERGED = run("diverged", "FAILED", None, "warn", "learning rate too high",
               failure="loss became nan at epoch 2, step 17", loss=(2.0,),
               tags={"failure_epoch": "2", "failure_step": "17", "error_type": "DivergenceError"})
KILLED = run("killed", "KILLED", None, failure="interrupted: received signal SIGTERM")
RUNS = [*GOOD, STALLED, DIVERGED, KILLED]
LINKS = {"the sweep": "http://127.0.0.1:5000/#/experiments/1/runs/p?workflowType=machine_learning"}


def overview(runs=RUNS):
    return sweep_overview("convergence", "11 runs: 9 FINISHED, 1 FAILED, 1 KILLED", runs,
                          754.0, Path("/sweeps/x/report"), "p", LINKS,
                          "start it with `make ui`, port 5000")


def test_the_overview_ranks_the_best_and_worst_runs():
    lines = overview().splitlines()
    assert lines[0] == ("Sweep convergence done in 12m 34s: "
                        "11 runs: 9 FINISHED, 1 FAILED, 1 KILLED.")
    assert lines[1] == "Runs by test accuracy (best and worst 3 of 9):"
    assert lines[2:5] == ["  1. 0.4700  good7", "  2. 0.4600  good6", "  3. 0.4500  good5"]
    assert "3 more in summary.md" in lines[5]
    assert lines[6:9] == ["  7. 0.4100  good1", "  8. 0.4000  good0", "  9. 0.1000  stalled"]


def test_a_small_sweep_lists_every_run():
    text = overview(GOOD[:3])
    assert "Runs by test accuracy:\n  1. 0.4200  good2\n  2. 0.4100  good1\n  3. 0.4000  good0" \
        in text
    assert "Every run converged." in text


def test_the_overview_gives_each_run_that_did_not_converge_with_its_diagnosis():
    text = overview()
    assert ("Did not converge (3 of 11), with what happened during training and the "
            "diagnosis before it:") in text
    assert ("  - stalled (FINISHED): final training loss 2.3 above ½·ln 10 = 1.15, test "
            "accuracy 0.100; during training: a plateau at chance from epoch 1 to 2") in text
    assert "Diagnosis: fail, initial weights far too large." in text
    assert ("  - diverged (FAILED): during training: diverged at epoch 2, step 17: the loss "
            "became nan. Diagnosis: warn, learning rate too high.") in text
    assert ("  - killed (KILLED): during training: killed during epoch 3: interrupted: "
            "received signal SIGTERM.") in text
    assert "good" not in text.split("Did not converge")[1]


def test_the_overview_ends_on_the_report_and_the_links():
    text = overview()
    assert "Report: /sweeps/x/report/ (summary.md, summary.csv, figures)," in text
    assert "parent run p," in text
    assert text.endswith("Open it in MLflow's UI (start it with `make ui`, port 5000):\n"
                         f"  the sweep: {LINKS['the sweep']}")


def test_parent_metrics_count_the_runs_by_status():
    metrics = parent_metrics(RUNS, 754.04)
    assert metrics == {"runs": 11, "runs_finished": 9, "runs_failed": 1, "runs_killed": 1,
                       "runs_not_converged": 3, "sweep_wall_time_s": 754.0,
                       "best_test_acc": pytest.approx(0.47),
                       "mean_test_acc": pytest.approx((sum(r.test_acc for r in GOOD) + 0.1) / 9)}


def test_parent_metrics_of_a_sweep_where_no_run_finished():
    metrics = parent_metrics([DIVERGED, KILLED], 3.0)
    assert "best_test_acc" not in metrics and metrics["runs_finished"] == 0


def test_a_run_without_health_checks_says_they_were_off():
    # issue 27: it read "Diagnosis: ?, no cause found.", as if the checks had found nothing.
    stuck = (2.31, 2.302)  # at chance: it did not converge, so the overview lists it
    unchecked = run("unchecked", "FINISHED", 0.05, health="", cause="", loss=stuck)
    unchecked.params["trainer.health_checks"] = "False"
    line = next(l for l in overview([*GOOD, unchecked]).splitlines()  # noqa: E741
                if l.startswith("  - unchecked"))
    assert line.endswith("Diagnosis: none, the health checks were off "
                         "(trainer.health_checks=false).")
    # Checks that ran and left no tag still read as unknown.
    assert "Diagnosis: ?, no cause found." in overview(
        [*GOOD, run("x", "FINISHED", 0.05, "", "", loss=stuck)])
