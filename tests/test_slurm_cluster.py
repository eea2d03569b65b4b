"""hydra/launcher=slurm on a real (one-node) SLURM cluster, logging to a PostgreSQL-backed
tracking server, as a team runs sweeps: the jobs are SLURM jobs submitted by submitit,
and each reaches the server over HTTP.

The cluster (tests/slurm_cluster.py, with real accounting: slurmdbd and MariaDB) and the
server (tests/fixtures/tracking_server.py) are started by the fixtures. Without SLURM,
munge, slurmdbd, MariaDB or PostgreSQL the tests skip, except under CI (CI=true), where
they fail. The SLURM job ids are printed (pytest -rP or -s shows them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow, pytest.mark.slurm]

TINY = ["model=seed", "data.n_train=200", "data.n_val=50", "trainer.batch_size=50",
        "trainer.progress=false", "trainer.health_checks=false",
        "tracking.log_model=false", "tracking.log_dataset=false"]
EPOCH_METRICS = ["train_loss", "train_acc", "val_loss", "val_acc", "lr"]
# Epochs for a job that must still be training when the test (or SLURM) stops it: at
# about 0.2 s an epoch it would take hours.
FOREVER = 100_000


def slurm_launcher(cluster, timeout_min: int, *extra: str) -> list[str]:
    """Overrides that send a sweep's jobs to `cluster`: one CPU each, so that two run at a
    time on a two-core node, and 1 GB (the node may be a small CI runner)."""
    return ["hydra/launcher=slurm", f"hydra.launcher.partition={cluster.partition}",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
            f"hydra.launcher.timeout_min={timeout_min}", *extra]


class Sweep:
    """`python -m experiments.train -m ...` running in the background, its output going to
    a file so that a long sweep cannot block on a full pipe. As a context manager it never
    outlives the test: a sweep still running at the end (a failed assertion) is stopped."""

    def __init__(self, cli, cluster, server, name: str, *overrides: str) -> None:
        cli.env.update({k: cluster.env[k] for k in ("SLURM_CONF", "PATH")})
        self.name, self.dir, self.log = name, cli.folder / name, cli.folder / f"{name}.log"
        args = ["-m", *TINY, *overrides, "tracking=server", f"tracking.uri={server.uri}",
                f"tracking.experiment={name}", f"hydra.sweep.dir={self.dir}"]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(cli.command("experiments.train", *args),
                                            cwd=cli.folder, env=cli.env, stdout=out,
                                            stderr=subprocess.STDOUT)

    def finish(self, timeout: float) -> str:
        """Wait for the sweep to end (or stop it after `timeout` s); return its output."""
        try:
            self.process.wait(timeout)
        finally:
            self.stop()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # the sweep ends its parent run on SIGTERM
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Sweep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def array_job_id(sweep_dir: Path, timeout: float = 60) -> str:
    """The SLURM array job submitit submitted the sweep as (its .submitit/<id>_<i> folders)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = {m.group(1) for p in (sweep_dir / ".submitit").glob("*_*")
               if (m := re.fullmatch(r"(\d+)_\d+", p.name))}
        if ids:
            assert len(ids) == 1, ids
            return ids.pop()
        time.sleep(0.5)
    raise AssertionError(f"no job was submitted within {timeout} s")


# States a job passes through on its way to its end (COMPLETING: its processes are being
# killed, which on a loaded machine outlasts the sweep's own end by seconds).
UNSETTLED = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED")


def report_jobs(cluster, array_id: str, timeout: float = 60) -> dict[int, str]:
    """Print the array's SLURM jobs as the scheduler reports them, once each has reached
    its end state (waiting up to `timeout` seconds); return {task: state}."""

    def array_jobs():
        return [j for j in cluster.jobs([array_id]) if re.fullmatch(r"\d+_\d+", j.job_id)]

    cluster.wait_for(lambda: not any(j.state in UNSETTLED for j in array_jobs()), timeout,
                     f"array job {array_id}'s jobs to reach their end states")
    jobs = array_jobs()
    print(f"SLURM array job {array_id}:")
    for job in sorted(jobs, key=lambda j: int(j.job_id.split("_")[1])):
        print(f"  {job.job_id} (job id {job.slurm_id}) on {job.node or '-'}: {job.state}"
              f" ({job.reason})")
    return {int(j.job_id.split("_")[1]): j.state for j in jobs}


def sweep_runs(client, experiment: str):
    """The sweep's parent run and its children keyed by trainer.epochs."""
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if "sweep_dir" in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    parent = parents[0]
    children = {int(r.data.params["trainer.epochs"]): r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return parent, children


def steps(client, run, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))


def report_files(client, parent) -> set[str]:
    return {a.path.split("/")[-1] for a in client.list_artifacts(parent.info.run_id, "report")}


def test_sacct_reports_a_finished_job_from_slurmdbd(slurm_cluster):
    """submitit reads job states with `sacct`: the one the cluster's clients (and jobs)
    find is SLURM's own, and it reports a finished batch job from the accounting
    database, where slurmctld recorded it."""
    cluster = slurm_cluster
    sacct = shutil.which("sacct", path=cluster.env["PATH"])
    assert sacct == "/usr/bin/sacct", sacct
    job_id = cluster.run("sbatch", "--parsable", f"--partition={cluster.partition}",
                         f"--output={cluster.folder / 'true.out'}", "--wrap=true").strip()
    print(f"SLURM job {job_id}")

    def reported() -> list[str]:
        out = cluster.run("sacct", "-j", job_id, "-o", "JobID,State", "--parsable2",
                          "--noheader", check=False)
        return out.splitlines()

    cluster.wait_for(lambda: f"{job_id}|COMPLETED" in reported(), 60,
                     f"sacct to report job {job_id} COMPLETED")
    assert reported() == [f"{job_id}|COMPLETED", f"{job_id}.batch|COMPLETED"]
    # The record sacct read is in MariaDB (state 3: JOB_COMPLETE).
    rows = cluster.accounting.sql("SELECT id_job, state FROM "
                                  "slurm_acct_db.testlab_job_table").stdout.split("\n")
    assert f"{job_id}\t3" in rows, rows


def test_sweep_runs_as_slurm_jobs_and_logs_to_the_server(slurm_cluster, postgres_server,
                                                         harness_cli):
    import mlflow

    cli, cluster, server = harness_cli, slurm_cluster, postgres_server
    with Sweep(cli, cluster, server, "slurm-sweep", "trainer.epochs=2",
               "init=he,xavier,normal", *slurm_launcher(cluster, 10)) as sweep:
        array_id = array_job_id(sweep.dir)
        output = sweep.finish(timeout=240)
    states = report_jobs(cluster, array_id)
    assert sweep.process.returncode == 0, output[-5000:]
    assert states == {0: "COMPLETED", 1: "COMPLETED", 2: "COMPLETED"}, states

    client = mlflow.MlflowClient(tracking_uri=server.uri)
    parent, _ = sweep_runs(client, "slurm-sweep")
    children = {r.data.params["init.name"]: r
                for r in client.search_runs([parent.info.experiment_id])
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == ["he", "normal", "xavier"]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["jobs"] == "3 runs: 3 FINISHED"
    for init, child in children.items():
        assert child.info.status == "FINISHED", init
        assert "test_acc" in child.data.metrics, init
        for key in EPOCH_METRICS:
            assert steps(client, child, key) == [1, 2], (init, key)
    assert {"summary.md", "summary.csv"} <= report_files(client, parent)
    # Each job ran as its own SLURM job: submitit's folder holds one log per array task.
    logs = sorted(p.name for p in (sweep.dir / ".submitit").glob("*/*_log.out"))
    assert logs == [f"{array_id}_{i}_0_log.out" for i in range(3)], logs


def wait_for_epoch(client, experiment: str, epochs: int, cluster, timeout: float = 90):
    """Wait until the run of the job training `epochs` epochs has logged its first one."""
    def logged() -> bool:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return False
        runs = client.search_runs([found.experiment_id],
                                  filter_string=f"params.`trainer.epochs` = '{epochs}'")
        return bool(runs) and bool(steps(client, runs[0], "train_loss"))

    cluster.wait_for(logged, timeout, f"the job training {epochs} epochs to log one")


def test_cancelled_and_timed_out_jobs_end_killed_and_the_sweep_goes_on(
        slurm_cluster, postgres_server, harness_cli):
    """One sweep, four SLURM jobs with a one-minute limit (as many run at once as the node
    has CPUs, in order):
        0  trains for ever: SLURM ends it at its time limit (SIGTERM, state TIMEOUT)
        1  trains for ever: cancelled with scancel after its first epoch (SIGTERM)
        2  trains for ever: gets SIGUSR2 after its first epoch, which SLURM sends before
           the time limit (submitit's --signal=USR2@<signal_delay_s>), as submitit's own
           tests send it: `scancel --signal=USR2`
        3  trains two epochs and finishes
    Runs 0-2 must end KILLED, not RUNNING or FAILED; run 3 FINISHED; and the sweep must
    go on to its end: parent FINISHED, with its report.
    """
    import mlflow

    cli, cluster, server = harness_cli, slurm_cluster, postgres_server
    name = "slurm-faults"
    epochs = [FOREVER, FOREVER + 1, FOREVER + 2, 2]
    # signal_delay_s=0: no early SIGUSR2, so that job 0 really runs into its time limit
    # (with the default 120 s it would come at once, before a one-minute limit).
    with Sweep(cli, cluster, server, name, "trainer.epochs=" + ",".join(map(str, epochs)),
               *slurm_launcher(cluster, 1, "hydra.launcher.signal_delay_s=0")) as sweep:
        array_id = array_job_id(sweep.dir)
        client = mlflow.MlflowClient(tracking_uri=server.uri)
        wait_for_epoch(client, name, epochs[1], cluster)
        cluster.run("scancel", f"{array_id}_1")
        wait_for_epoch(client, name, epochs[2], cluster)
        cluster.run("scancel", "--signal=USR2", f"{array_id}_2")
        # A minute of time limit, up to 30 s more before slurmctld checks it, KillWait.
        output = sweep.finish(timeout=240)
    states = report_jobs(cluster, array_id)
    assert sweep.process.returncode == 0, output[-5000:]
    assert states == {0: "TIMEOUT", 1: "CANCELLED", 2: "COMPLETED", 3: "COMPLETED"}, states

    parent, children = sweep_runs(client, name)
    statuses = {e: r.info.status for e, r in children.items()}
    print(f"MLflow runs by trainer.epochs: {statuses}")
    assert statuses == {epochs[0]: "KILLED", epochs[1]: "KILLED", epochs[2]: "KILLED",
                        epochs[3]: "FINISHED"}, statuses
    reasons = {e: r.data.tags.get("failure_reason", "") for e, r in children.items()}
    assert "SIGTERM" in reasons[epochs[0]] and "SIGTERM" in reasons[epochs[1]], reasons
    assert "SIGUSR2" in reasons[epochs[2]], reasons
    # What the stopped jobs logged before they were stopped is kept.
    for e in epochs[:3]:
        assert steps(client, children[e], "train_loss")[:1] == [1], e
    finished = children[epochs[3]]
    assert "test_acc" in finished.data.metrics
    assert steps(client, finished, "train_loss") == [1, 2]
    # One stopped job stops neither the parent nor the sweep's end: the report is there.
    assert parent.info.status == "FINISHED"
    assert re.search(r"4 runs: .*1 FINISHED", parent.data.tags["jobs"]), parent.data.tags
    assert "3 KILLED" in parent.data.tags["jobs"], parent.data.tags
    assert "summary.md" in report_files(client, parent)
