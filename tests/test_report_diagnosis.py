"""The sweep report names the runs that did not converge, by a stated rule, with what
happened during training and their diagnosis before it."""

from experiments.reporting.collect import RunSummary, not_converged
from experiments.reporting.summary import diagnosis_section, summary_rows


def run(name, status, acc, train_loss, train_acc=None, health="pass", cause="-", tags=None,
        series=None):
    curves = {"train_loss": train_loss}
    if train_acc is not None:
        curves["train_acc"] = train_acc
    return RunSummary(
        run_id=name, name=name, status=status, init="he", lr=0.03, n_train="1000", seed="0",
        curves=curves, test_acc=acc, health=health, health_cause=cause,
        failure=(tags or {}).get("failure_reason", ""), tags=tags or {}, series=series or {},
    )


DIVERGED_TAGS = {"failure_reason": "loss became nan at epoch 2, step 17", "failure_epoch": "2",
                 "failure_step": "17", "error_type": "DivergenceError"}
RUNS = [
    run("good", "FINISHED", 0.60, [2.0, 0.8]),
    run("fine", "FINISHED", 0.45, [2.0, 1.0]),
    # Above half the best run's accuracy, but its training loss is far from converged.
    run("slow", "FINISHED", 0.32, [2.2, 1.62], [0.2, 0.4]),
    run("stalled", "FINISHED", 0.10, [2.31, 2.303], [0.1, 0.1], "fail",
        "initial weights far too large",
        series={"relu2.dead_frac": {0: 0.009, 1: 0.999, 2: 0.999}}),
    run("diverged", "FAILED", None, [2.0], health="fail", cause="learning rate too high",
        tags=DIVERGED_TAGS),
]


def test_runs_that_failed_or_did_not_bring_the_training_loss_down_did_not_converge():
    assert [r.name for r in not_converged(RUNS)] == ["slow", "stalled", "diverged"]


def test_the_diagnosis_section_states_the_rule():
    assert "By this report's rule, a run converged when it FINISHED with a final training " \
           "loss of at most half of ln K" in diagnosis_section(RUNS)


def test_diagnosis_section_explains_each_run_that_did_not_converge():
    text = diagnosis_section(RUNS)
    assert ("**slow** (FINISHED): final training loss 1.62 above ½·ln 10 = 1.15, test "
            "accuracy 0.320; during training: no cause found (training loss 2.2 → 1.62 over 2 "
            "epochs, falling by 0.58 an epoch at the end). Diagnosis before training: pass, "
            "no cause found.") in text
    assert ("**stalled** (FINISHED): final training loss 2.3 above ½·ln 10 = 1.15, test "
            "accuracy 0.100; during training: units died at epoch 1 (dead fraction on the "
            "probe images: relu2 0.009 → 0.999); a plateau at chance from epoch 1 to 2") in text
    assert "initial weights far too large" in text
    assert ("**diverged** (FAILED): during training: diverged at epoch 2, step 17: the loss "
            "became nan. Diagnosis before training: fail, learning rate too high.") in text
    assert "**good**" not in text and "**fine**" not in text


def test_every_row_carries_its_health_and_what_training_showed():
    by_name = {row["run"]: row for row in summary_rows(RUNS)}
    assert by_name["stalled"]["health"] == "fail" and by_name["good"]["health"] == "pass"
    assert by_name["stalled"]["training"] == "units died, plateau at chance"
    assert by_name["diverged"]["training"] == "diverged"
    assert by_name["good"]["training"] == ""


def test_a_sweep_where_everything_converged_says_so():
    assert "Every run converged." in diagnosis_section(RUNS[:2])
