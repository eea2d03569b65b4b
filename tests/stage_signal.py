"""Run a harness command that sends itself a stop signal at one chosen stage:

    python -m stage_signal <module:attr[.attr]> <before|after> <SIGNAL> <nth> <command> [args]

e.g. `python -m stage_signal mlflow:start_run after SIGTERM 1 experiments.train model=seed`
sends SIGTERM just after the first mlflow.start_run returns. The attribute is wrapped before
the command starts (HarnessCli puts tests/ on the PYTHONPATH), so the signal lands at the
same point every time, with no hook in the harness itself. Used by
tests/test_faults_run_start.py.
"""

import importlib
import os
import runpy
import signal
import sys
from typing import Any


def arm(target: str, when: str, signum: int, nth: int) -> None:
    """Wrap `target` so that its nth call sends `signum` to this process, before or after."""
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, attr = path.split(".")
    for name in parents:
        owner = getattr(owner, name)
    original = getattr(owner, attr)
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == nth and when == "before":
            os.kill(os.getpid(), signum)
        result = original(*args, **kwargs)
        if calls == nth and when == "after":
            os.kill(os.getpid(), signum)
        return result

    setattr(owner, attr, wrapper)


def main() -> None:
    target, when, name, nth, command, *args = sys.argv[1:]
    assert when in ("before", "after"), when
    arm(target, when, getattr(signal, name), int(nth))
    sys.argv = [command, *args]
    runpy.run_module(command, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
