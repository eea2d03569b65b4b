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
