"""Faults the harness tests inject into training runs, as the config's own callbacks:

    +callbacks.fault._target_=faults.InterruptAfterEpoch +callbacks.fault.epoch=2

The harness runs them like any training callback (experiments.runs.callbacks.from_config);
HarnessCli (fixtures/harness.py) puts this folder on the PYTHONPATH of the commands it runs.
Nothing in the harness knows about them.
"""

import logging
import os
import signal

log = logging.getLogger(__name__)


class InterruptAfterEpoch:
    """Raise KeyboardInterrupt, as Ctrl-C would, at the end of `epoch` (after its metrics
    and checkpoint, which come earlier in the callback list)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"fault injected after epoch {epoch}")


class KillAfterEpoch:
    """SIGKILL the process at the end of `epoch`, as the out-of-memory killer would; with
    `job`, only in that job of a sweep (Hydra's job number)."""

    def __init__(self, epoch: int, job: int | None = None) -> None:
        self.epoch, self.job = int(epoch), job

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch != self.epoch or not self._in_job():
            return
        log.warning("KillAfterEpoch: the process kills itself (SIGKILL) after epoch %d", epoch)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)

    def _in_job(self) -> bool:
        if self.job is None:
            return True
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get().job.num == int(self.job)


class FailAfterEpoch:
    """Raise RuntimeError at the end of `epoch`, as a bug in training would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch == self.epoch:
            raise RuntimeError(f"fault injected after epoch {epoch}")


class StopAsTheRunEnds:
    """Ctrl-C pressed twice at the worst moments of a sweep (hydra/launcher=basic, so in
    the sweep's process): just as this job's run has ended FINISHED, and again while the
    sweep's parent run is being ended. Prints a line each time the parent is ended, so a
    test can count who ends it, and how often."""

    def __init__(self) -> None:
        self.armed = False

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.armed:
            return
        self.armed = True
        import mlflow
        from hydra.core.hydra_config import HydraConfig

        from experiments.sweeps.parent import read_parent_run

        parent = read_parent_run(HydraConfig.get().sweep.dir)["run_id"]
        end_run, set_terminated = mlflow.end_run, mlflow.MlflowClient.set_terminated

        def end_then_interrupt(*args, **kwargs):
            mlflow.end_run = end_run  # once: the job's own run
            end_run(*args, **kwargs)
            signal.raise_signal(signal.SIGINT)

        def interrupted_ending(client, run_id, *args, **kwargs):
            if run_id == parent:
                print(f"fault: ending the sweep's parent as {kwargs.get('status')}", flush=True)
                signal.raise_signal(signal.SIGINT)
            set_terminated(client, run_id, *args, **kwargs)
            if run_id == parent:
                print("fault: the sweep's parent is ended", flush=True)

        mlflow.end_run = end_then_interrupt
        mlflow.MlflowClient.set_terminated = interrupted_ending


class _InOneSeed:
    """At the end of `epoch`; with `only_seed`, only in the run whose `seed` (pass
    `${trainer.seed}`) is that one: one seed of a search trial's (experiments.sweeps.trial)."""

    def __init__(self, epoch: int, seed: int | None = None,
                 only_seed: int | None = None) -> None:
        self.epoch, self.seed, self.only_seed = int(epoch), seed, only_seed

    def _now(self, epoch: int) -> bool:
        return epoch == self.epoch and (self.only_seed is None
                                        or int(self.seed) == int(self.only_seed))


class SignalAfterEpoch(_InOneSeed):
    """Send this process a real SIGINT, as Ctrl-C does (see _InOneSeed for when)."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self._now(epoch):
            signal.raise_signal(signal.SIGINT)


class DivergeAfterEpoch(_InOneSeed):
    """Raise DivergenceError, as a loss that became NaN does (see _InOneSeed for when)."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self._now(epoch):
            from cnn.training import DivergenceError

            raise DivergenceError(epoch, 0, float("nan"))
