"""The sweep report names the runs that did not converge and gives their diagnosis."""

from experiments.reporting.collect import RunSummary, not_converged
from experiments.reporting.summary import diagnosis_section, summary_rows


def run(name, status, acc, health="pass", cause="-", failure=""):
    return RunSummary(
        run_id=name,
        name=name,
        status=status,
        init="he",
        lr=0.03,
        n_train="1000",
        seed="0",
        curves={"train_loss": [2.0, 1.0]},
        test_acc=acc,
        health=health,
        health_cause=cause,
        failure=failure,
    )


RUNS = [
    run("good", "FINISHED", 0.60),
    run("fine", "FINISHED", 0.45),
    run("stalled", "FINISHED", 0.10, "fail", "initial weights far too large"),
    run(
        "diverged",
        "FAILED",
        None,
        "fail",
        "learning rate too high",
        failure="loss became nan at epoch 2, step 17",
    ),
]


def test_failed_and_far_behind_runs_count_as_not_converged():
    assert [r.name for r in not_converged(RUNS)] == ["stalled", "diverged"]


def test_diagnosis_section_explains_each_run_that_did_not_converge():
    text = diagnosis_section(RUNS)
    assert "**stalled** (FINISHED): test accuracy 0.100" in text
    assert "initial weights far too large" in text
    assert "**diverged** (FAILED): loss became nan at epoch 2, step 17" in text
    assert "learning rate too high" in text
    assert "**good**" not in text and "**fine**" not in text


def test_every_row_carries_its_health():
    assert [row["health"] for row in summary_rows(RUNS)] == ["pass", "pass", "fail", "fail"]


def test_a_sweep_where_everything_converged_says_so():
    assert "Every run converged." in diagnosis_section(RUNS[:2])
