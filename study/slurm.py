"""Grid points as SLURM jobs, through submitit: ``study batch GRID --executor slurm``.

Each point becomes one job running the same worker a local batch runs (``python -m study.worker``,
:mod:`study.worker`), so run ids, the skipping of stored points, provenance and the executed
notebooks are the local ones.  The batch stays in the foreground and follows its jobs through the
shared filesystem (each run's ``progress.json`` and log), then runs the reports once the last point
is stored.  What a cluster needs besides:

- a job cut off by its time limit (SLURM's signal ``--signal=USR2@90``, set by submitit) or
  preempted is requeued by submitit, and its point resumes from the checkpoint of its last finished
  epoch, as an interrupted run does;
- two jobs (or two batches) that reach one point never train it at once: the run's lock
  (:mod:`study.locks`) makes the second wait and then skip it;
- a job that ends without a result (cancelled, killed, out of memory) is reported with its log.

Job states come from ``squeue`` (completed jobs stay listed for the cluster's ``MinJobAge``),
so no accounting database is needed.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from study.worker import INTERRUPTED_STATUS

ENDED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "SPECIAL_EXIT", "REVOKED"}
NO_RESULT = -int(signal.SIGKILL)  # the status of a job that ended before its worker wrote a result
KILL_WAIT_SECONDS = 300.0  # longer than any cluster's KillWait (SLURM's default: 30 s)


@dataclass(frozen=True)
class SlurmResources:
    """What each point's job asks for: the grid file's ``slurm:`` mapping, then the command line's options."""

    partition: str | None = None
    time_min: int = 240  # per job; a longer run is requeued at the limit and resumes from its checkpoint
    cpus: int = 2
    gpus: int = 0
    mem_gb: float = 8.0
    account: str | None = None

    def with_overrides(self, **values: Any) -> "SlurmResources":
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown SLURM resource(s) {sorted(unknown)}; expected some of {sorted(known)}")
        return replace(self, **{key: value for key, value in values.items() if value is not None})

    def sbatch_options(self) -> str:
        """The sbatch options each job is submitted with, as a user would type them."""
        options = [f"--partition={self.partition}"] if self.partition else []
        options += [f"--time={self.time_min}", f"--cpus-per-task={self.cpus}", f"--mem={self.mem_gb:g}G"]
        options += [f"--gpus-per-node={self.gpus}"] if self.gpus else []
        options += [f"--account={self.account}"] if self.account else []
        return " ".join(options + ["--signal=USR2@90", "--requeue"])


class PointJob:
    """The callable each job runs: the point's worker as a child process, its output appended to the point's log.

    Stateless (the run's state is its checkpoint), so submitit's default ``checkpoint`` (submit the
    same call again) is a correct requeue.
    """

    def __init__(self, task_file: str, log: str, cwd: str, threads: int) -> None:
        self.task_file, self.log, self.cwd, self.threads = task_file, log, cwd, threads

    def __call__(self) -> int:
        env = dict(os.environ)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(self.threads)
        env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
        with open(self.log, "a") as log:
            log.write(f"# SLURM job {os.environ.get('SLURM_JOB_ID', '?')} on {os.uname().nodename}, "
                      f"restart {os.environ.get('SLURM_RESTART_COUNT', '0')}\n")
            log.flush()
            worker = subprocess.Popen([sys.executable, "-m", "study.worker", self.task_file], stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.cwd, env=env)
            status = worker.wait()
        if status == INTERRUPTED_STATUS:
            # SLURM's SIGTERM (scancel, a requeue, a preemption) reached the worker: the job is ending, and
            # a requeued one runs again.  Writing no result until SLURM's SIGKILL keeps the batch waiting
            # for the requeued run instead of reporting this attempt as the point's outcome.
            time.sleep(KILL_WAIT_SECONDS)
        return status

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


class SlurmJob:
    """A submitted point, with the part of ``subprocess.Popen``'s interface the scheduler uses."""

    def __init__(self, job) -> None:
        self.job, self.returncode = job, None
        self.pid = job.job_id
        self.label = f"SLURM job {job.job_id}"

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if self._has_result():
            self.returncode = self._result()
        elif squeue_state(self.job.job_id) in ENDED_STATES | {None}:
            time.sleep(1.0)  # the result file of a job that has just completed may lag on a shared filesystem
            self.returncode = self._result() if self._has_result() else NO_RESULT
        return self.returncode

    def _has_result(self) -> bool:
        """The job's result file exists (read directly: submitit's own state check asks sacct, which needs
        the cluster's accounting database)."""
        folder = self.job.paths.folder
        try:
            folder.chmod(folder.stat().st_mode)  # refreshes a network filesystem's view of the folder
        except OSError:
            pass
        return self.job.paths.result_pickle.exists()

    def _result(self) -> int:
        from submitit.core.utils import pickle_load

        try:
            outcome, value = pickle_load(self.job.paths.result_pickle)
        except Exception:  # half-written, or unreadable
            return 1
        return int(value) if outcome == "success" else 1  # "error": the callable raised, or was not requeued

    def wait(self, timeout: float | None = None) -> int:
        limit = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if limit is not None and time.monotonic() > limit:
                raise subprocess.TimeoutExpired(f"SLURM job {self.pid}", timeout)
            time.sleep(2.0)
        return self.returncode

    def signal_session(self, signum: int) -> None:
        """SIGTERM: ``scancel`` (SLURM sends SIGTERM, then SIGKILL after its KillWait); SIGKILL at once."""
        command = ["scancel", str(self.pid)] if signum == signal.SIGTERM else ["scancel", "--signal=KILL", str(self.pid)]
        subprocess.run(command, capture_output=True, text=True)


def squeue_state(job_id: str) -> str | None:
    """The job's state as ``squeue`` lists it (``PENDING``, ``RUNNING``, ``COMPLETED`` ...), None when not listed."""
    try:
        listed = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True,
                                timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "UNKNOWN"  # a scheduler that does not answer: keep waiting
    states = listed.stdout.split()
    return states[0] if listed.returncode == 0 and states else None


class SlurmExecutor:
    """Points as SLURM jobs, submitted through submitit with ``resources``; job files go to ``folder``."""

    def __init__(self, *, folder: str | Path, resources: SlurmResources) -> None:
        self.folder, self.resources = Path(folder), resources

    def _executor(self, name: str):
        import submitit

        executor = submitit.SlurmExecutor(folder=str(self.folder / "%j"), max_num_timeout=20)
        r = self.resources
        extra = {"requeue": True, **({"account": r.account} if r.account else {})}
        executor.update_parameters(job_name=name, time=int(r.time_min), cpus_per_task=int(r.cpus),
                                   mem=f"{r.mem_gb:g}G", signal_delay_s=90, additional_parameters=extra,
                                   **({"partition": r.partition} if r.partition else {}),
                                   **({"gpus_per_node": int(r.gpus)} if r.gpus else {}))
        return executor

    def start(self, point, slot: int):
        from study.scheduler import _Running, write_task

        task_file, result_file = write_task(point)
        point.log.write_text(f"# submitted to SLURM: sbatch {self.resources.sbatch_options()}\n")
        job = self._executor(point.run_id).submit(PointJob(str(task_file), str(point.log), point.cwd,
                                                           self.resources.cpus))
        return _Running(point, SlurmJob(job), time.monotonic(), result_file, task_file)

    def describe(self, point) -> str:
        return f"SLURM job {point.run_id}: sbatch {self.resources.sbatch_options()} (log {point.log})"

    def __repr__(self) -> str:
        return f"SlurmExecutor({self.folder}, {asdict(self.resources)})"


def slurm_available() -> str | None:
    """None when a SLURM controller answers here, else why not (for a clear error and the tests)."""
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return "sinfo is not installed (no SLURM client here; tools/slurm-local.sh starts a one-node cluster)"
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s"
    if answer.returncode != 0:
        return f"sinfo failed: {answer.stderr.strip() or answer.stdout.strip()}"
    return None


def sbatch_line(resources: SlurmResources, point) -> str:
    """How ``--dry-run --executor slurm`` shows one job."""
    return f"sbatch {resources.sbatch_options()} --job-name={shlex.quote(point)}"
