"""The diagnosis from training itself names each cause from synthetic metric series, says
when it began, and finds none in healthy runs."""

import math

import pytest

from cnn.diagnostics import CONVERGENCE_RULE, Cause, RunEnd, diagnose_training

LN10 = math.log(10)


def epochs(*values, start=1):
    """{step: value} for consecutive epochs from `start`."""
    return dict(enumerate(values, start=start))


def healthy(n=10):
    """A run that learns: loss down, accuracy up, validation loss down, a few dead units,
    gradient norms that wander within a factor of a few."""
    loss = [2.1 * 0.85 ** e for e in range(n)]
    return {
        "train_loss": epochs(*loss),
        "train_acc": epochs(*(0.2 + 0.05 * e for e in range(n))),
        "val_loss": epochs(*(2.0 - 0.05 * e for e in range(n))),
        "relu1.dead_frac": epochs(*(0.01 + 0.01 * e for e in range(n + 1)), start=0),
        "relu2.dead_frac": epochs(*(0.05 + 0.02 * e for e in range(n + 1)), start=0),
        "conv1.grad_norm": epochs(*(1.5 * (1 + 0.3 * math.sin(e)) for e in range(n + 1)), start=0),
        "dense1.grad_norm": epochs(*(18.0 / (1 + 0.2 * e) for e in range(n + 1)), start=0),
    }


def causes(diagnosis):
    return [f.cause for f in diagnosis.findings]


def test_a_healthy_run_has_no_cause_and_converged():
    d = diagnose_training(healthy(), RunEnd())
    assert d.findings == ()
    assert d.converged
    assert d.line() == ("no cause found (training loss 2.1 → 0.486 over 10 epochs, falling by "
                        "0.093 an epoch at the end)")


def test_small_gradients_of_a_run_that_has_learned_are_no_symptom():
    series = healthy()
    series["conv1.grad_norm"] = epochs(1.5, *(1.5 * 10 ** -e for e in range(1, 11)), start=0)
    series["train_loss"] = epochs(*(2.0 * 0.5 ** e for e in range(10)))  # down to 0.004
    d = diagnose_training(series, RunEnd())
    assert Cause.GRADIENTS_VANISHED not in causes(d) and d.converged


def test_divergence_names_the_epoch_and_step():
    d = diagnose_training(healthy(3), RunEnd("FAILED", "loss became nan at epoch 4, step 41",
                                              epoch=4, step=41, diverged=True))
    assert causes(d) == [Cause.DIVERGED]
    assert d.findings[0].text == "diverged at epoch 4, step 41: the loss became nan"
    assert not d.converged and d.verdict == "FAILED"


def test_divergence_gives_the_sharpness_against_its_threshold_when_measured():
    series = {**healthy(3), "sharpness": epochs(30.0, 50.0, 412.0),
              "sharpness_threshold": epochs(66.7, 66.7, 66.7)}
    d = diagnose_training(series, RunEnd("FAILED", "loss became inf at epoch 4, step 50",
                                         epoch=4, step=50, diverged=True))
    assert d.findings[0].text == ("diverged at epoch 4, step 50: the loss became inf; "
                                  "sharpness 412 against 2/η = 66.7 at epoch 3")
    # With momentum the threshold is 2(1+β)/η; the crossing's epoch is said when earlier.
    series["sharpness"] = epochs(30.0, 700.0, 900.0)
    series["sharpness_threshold"] = epochs(633.0, 633.0, 633.0)
    d = diagnose_training(series, RunEnd("FAILED", "", epoch=4, step=50, diverged=True),
                          momentum=0.9)
    assert d.findings[0].text == ("diverged at epoch 4, step 50; sharpness 900 against "
                                  "2(1+β)/η = 633 at epoch 3, above it since epoch 2")


def test_divergence_is_said_first_whatever_came_before_it():
    series = healthy(3)
    series["relu2.dead_frac"] = epochs(0.01, 0.97, 0.98, 0.99, start=0)
    d = diagnose_training(series, RunEnd("FAILED", "", epoch=3, step=10, diverged=True))
    assert causes(d)[:2] == [Cause.DIVERGED, Cause.UNITS_DIED]


def test_units_dying_name_the_layer_and_the_epoch_they_crossed_the_bound():
    series = healthy(5)
    series["relu2.dead_frac"] = epochs(0.009, 0.3, 0.999, 1.0, 1.0, 1.0, start=0)
    d = diagnose_training(series, RunEnd())
    (died,) = [f for f in d.findings if f.cause == Cause.UNITS_DIED]
    assert died.epoch == 2
    assert "relu2 0.009 → 0.999" in died.text and "relu1" not in died.text


def test_units_dead_from_the_start_and_units_that_recover_are_said_so():
    series = healthy(4)
    series["relu1.dead_frac"] = epochs(0.95, 0.96, 0.97, 0.97, 0.97, start=0)
    series["relu2.dead_frac"] = epochs(0.0, 0.92, 0.5, 0.3, 0.2, start=0)
    d = diagnose_training(series, RunEnd())
    died = [f for f in d.findings if f.cause == Cause.UNITS_DIED]
    assert [f.epoch for f in died] == [0, 1]
    assert "relu1 dead from the start (0.95)" in died[0].text
    assert "relu2 0 → 0.92, 0.2 by epoch 4" in died[1].text


def test_a_layers_gradient_collapsing_from_its_start_is_vanishing():
    series = healthy(6)
    series["train_loss"] = epochs(2.3, 2.2, 2.2, 2.2, 2.2, 2.2)
    series["conv1.grad_norm"] = epochs(1.0, 0.8, 0.5, 0.1, 0.009, 0.005, 0.004, start=0)
    d = diagnose_training(series, RunEnd())
    (gone,) = [f for f in d.findings if f.cause == Cause.GRADIENTS_VANISHED]
    assert gone.epoch == 4 and "conv1 1 → 0.009" in gone.text and "dense1" not in gone.text


def test_an_early_layers_gradient_falling_behind_the_later_ones_is_vanishing():
    series = healthy(4)
    series["train_loss"] = epochs(2.3, 2.2, 2.2, 2.2)
    series["conv1.grad_norm"] = epochs(1.0, 2.0, 3.0, 4.0, 5.0, start=0)
    series["dense1.grad_norm"] = epochs(1.0, 10.0, 100.0, 1000.0, 2000.0, start=0)
    d = diagnose_training(series, RunEnd())
    (gone,) = [f for f in d.findings if f.cause == Cause.GRADIENTS_VANISHED]
    assert gone.epoch == 3 and "conv1" in gone.text and "dense1" not in gone.text


def test_gradients_vanishing_behind_dead_units_say_so():
    series = healthy(3)
    series["train_loss"] = epochs(13.4, 2.38, 2.35)
    series["relu2.dead_frac"] = epochs(0.008, 0.98, 1.0, 1.0, start=0)
    series["conv1.grad_norm"] = epochs(1.5, 0.3, 0.0005, 0.001, start=0)
    d = diagnose_training(series, RunEnd())
    assert causes(d)[:2] == [Cause.UNITS_DIED, Cause.GRADIENTS_VANISHED]
    assert "the training loss 13.4 that epoch (ln 10 = 2.30)" in d.findings[0].text
    assert d.findings[1].text.endswith("(the dead units pass none back)")


def test_validation_loss_rising_while_training_loss_falls_is_overfitting():
    series = healthy(8)
    series["train_loss"] = epochs(2.0, 1.5, 1.2, 1.0, 0.8, 0.6, 0.4, 0.3)
    series["val_loss"] = epochs(2.0, 1.7, 1.5, 1.45, 1.5, 1.6, 1.7, 1.8)
    d = diagnose_training(series, RunEnd())
    (over,) = [f for f in d.findings if f.cause == Cause.OVERFITTING]
    assert over.epoch == 5
    assert over.text == ("validation loss rose after epoch 4 (1.45 → 1.8 by epoch 8) while "
                         "training loss fell (1 → 0.3)")
    assert d.converged  # it learned its training images


def test_noise_in_the_validation_loss_or_a_run_at_chance_is_no_overfitting():
    series = healthy(6)
    series["val_loss"] = epochs(2.0, 1.8, 1.7, 1.75, 1.72, 1.78)  # 5 % above its minimum
    assert Cause.OVERFITTING not in causes(diagnose_training(series, RunEnd()))
    # A blown-up loss that comes down while the validation loss rises learned nothing.
    series["train_loss"] = epochs(1.6e6, 19.5, 2.36e3, 9.0, 5.0, 4.0)
    series["val_loss"] = epochs(15.2, 19.4, 32.6, 30.0, 33.0, 35.0)
    assert Cause.OVERFITTING not in causes(diagnose_training(series, RunEnd()))


def test_a_plateau_at_chance_says_from_when():
    series = healthy(6)
    series["train_loss"] = epochs(2.2, 2.1, 2.303, 2.302, 2.303, 2.302)
    series["train_acc"] = epochs(0.2, 0.22, 0.1, 0.098, 0.102, 0.1)
    d = diagnose_training(series, RunEnd())
    assert causes(d) == [Cause.CHANCE_PLATEAU]
    assert d.findings[0].text.startswith("a plateau at chance from epoch 3 to 6 (training loss "
                                         "2.3, ln 10 = 2.30; accuracy 0.100, chance 0.1)")
    assert not d.converged


def test_a_loss_that_never_left_ln_k_is_a_plateau_at_chance_whatever_the_accuracy():
    series = healthy(20)
    series["train_loss"] = epochs(*([2.30] * 18), 2.29, 2.29)
    series["train_acc"] = epochs(*([0.11] * 17), 0.158, 0.164, 0.166)
    d = diagnose_training(series, RunEnd())
    assert causes(d) == [Cause.CHANCE_PLATEAU] and d.findings[0].epoch == 1
    # Learning, with a loss that has left ln K behind: no plateau, however low its accuracy.
    series["train_loss"] = epochs(*([2.30] * 17), 2.15, 2.1, 2.05)
    assert Cause.CHANCE_PLATEAU not in causes(diagnose_training(series, RunEnd()))


def test_a_slow_learner_is_not_at_chance_but_did_not_converge():
    series = healthy(20)
    series["train_loss"] = epochs(*(2.25 - 0.033 * e for e in range(20)))  # 2.25 -> 1.62
    series["train_acc"] = epochs(*(0.15 + 0.007 * e for e in range(20)))
    d = diagnose_training(series, RunEnd())
    assert d.findings == ()
    assert not d.converged
    assert d.verdict == "final training loss 1.62 above ½·ln 10 = 1.15"
    assert d.line() == ("no cause found (training loss 2.25 → 1.62 over 20 epochs, falling by "
                        "0.033 an epoch at the end)")


def test_chance_follows_the_class_count():
    series = healthy(4)
    series["train_loss"] = epochs(0.70, 0.69, 0.69, 0.69)
    series["train_acc"] = epochs(0.5, 0.52, 0.5, 0.49)
    d = diagnose_training(series, RunEnd(), num_classes=2)
    assert causes(d) == [Cause.CHANCE_PLATEAU] and "ln 2 = 0.69" in d.findings[0].text
    with pytest.raises(ValueError, match="num_classes must be at least 2, got 1"):
        diagnose_training(series, RunEnd(), num_classes=1)


def test_killed_and_failed_runs_did_not_converge_and_say_how_they_stopped():
    d = diagnose_training(healthy(3), RunEnd("KILLED", "interrupted: received signal SIGTERM"))
    assert not d.converged and d.verdict == "KILLED"
    assert d.line() == "killed during epoch 4: interrupted: received signal SIGTERM"
    d = diagnose_training({}, RunEnd("FAILED", "MemoryError: out of memory"))
    assert d.line() == "failed during epoch 1: MemoryError: out of memory"


def test_the_convergence_rule_states_its_bound():
    assert "half of ln K" in CONVERGENCE_RULE and "1.15" in CONVERGENCE_RULE
    assert f"{0.5 * LN10:.2f}" == "1.15"
