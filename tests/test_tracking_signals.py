"""experiments.tracking.signals, in this process: one handler however scopes nest, signals
that wait while something is being ended, ignored signals left ignored, and the ending
registered for the way out. (tests/test_harness_lifecycle.py signals real commands.)"""

import signal
from types import SimpleNamespace

import pytest

from experiments.tracking import signals


@pytest.fixture(autouse=True)
def default_handlers():
    # pytest's own SIGINT handling, or a suite run under nohup, must not decide the test.
    saved = {s: signal.getsignal(s) for s in signals.stop_signals()}
    for signum in saved:
        signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT
                      else signal.default_int_handler)
    yield
    assert signals._REGIME.depth == 0  # every scope closed
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_nested_scopes_share_one_handler_and_restore_the_previous_one():
    before = signal.getsignal(signal.SIGTERM)
    with signals.stop_scope():
        handler = signal.getsignal(signal.SIGTERM)
        assert handler is not before
        with signals.stop_scope():
            assert signal.getsignal(signal.SIGTERM) is handler
        assert signal.getsignal(signal.SIGTERM) is handler
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_ignored_signal_stays_ignored():
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    with signals.stop_scope():
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        signal.raise_signal(signal.SIGHUP)  # nothing happens
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


def test_the_first_signal_stops_and_later_ones_wait_until_its_scope_closes():
    with signals.stop_scope():
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            with signals.stop_scope():
                try:
                    signal.raise_signal(signal.SIGTERM)
                    pytest.fail("the signal did not stop the block")
                finally:
                    signal.raise_signal(signal.SIGINT)  # ending what was stopped: waits
        # The stopped scope is closed: a signal stops again.
        with pytest.raises(KeyboardInterrupt, match="SIGINT"):
            signal.raise_signal(signal.SIGINT)


def test_a_signal_while_ending_waits_and_then_stops():
    ended = []
    with signals.stop_scope():
        with pytest.raises(KeyboardInterrupt, match="SIGHUP"):
            with signals.ending():
                signal.raise_signal(signal.SIGHUP)
                ended.append(True)
    assert ended == [True]


def test_the_outermost_scope_ends_what_was_registered_once_with_the_error():
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with signals.stop_scope():
            signals.on_unwind(seen.append)
            cancelled = signals.on_unwind(lambda error: pytest.fail("cancelled"))
            cancelled()
            with signals.stop_scope():
                signal.raise_signal(signal.SIGTERM)
    assert len(seen) == 1 and isinstance(seen[0], KeyboardInterrupt)
    with pytest.raises(RuntimeError, match="no stop scope"):
        signals.on_unwind(seen.append)


def test_a_stop_is_a_plain_keyboard_interrupt_naming_the_signal():
    # Plain: the interpreter dies of SIGINT (status 130 to a shell) only for that type.
    assert type(signals.stopped(signal.SIGTERM)) is KeyboardInterrupt
    assert str(signals.stopped(signal.SIGTERM)) == "received signal SIGTERM"
    assert (str(signals.stopped(signal.SIGUSR2))
            == "received signal SIGUSR2 from SLURM: time limit near, or preempted")


def test_submitit_can_name_another_preemption_signal(monkeypatch):
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")
    assert signals.stop_signals() == (signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                                      signal.SIGUSR1)


def test_a_signal_as_a_scope_closes_stops_right_after_it():
    # As if it landed in the scope's __exit__, before its own ending() began.
    with signals.stop_scope():
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            with signals.stop_scope():
                in_exit = SimpleNamespace(f_code=signals.stop_scope.__exit__.__code__)
                signals._REGIME.handle(signal.SIGTERM, in_exit)  # waits: no raise here
        assert signals._REGIME.stopped_at == 1  # a stop under way in the outer scope
