"""Running a grid's points: each in a process of its own, ``jobs`` at a time, within a time budget, stoppable.

Each point runs as ``python -m study.worker`` (:mod:`study.worker`) in a session of its own, with
its share of the CPUs (``OMP_NUM_THREADS``) and its own GPU when there are several, its output going
to the point's log file.  While the points run, :func:`run_points` follows each one through the
``progress.json`` its training loop rewrites after every epoch (:func:`study.train.write_progress`)
and tells a :class:`study.progress.GridDisplay` what happened.

A **time budget** (a deadline) starts a point only when its estimate (:mod:`study.estimate`) fits in
the time left, so that a scheduler's time limit never cuts a run off: a point that does not fit is
left for a later batch, and a shorter point after it may still start.

A **stop** (Ctrl-C, or SIGTERM from a scheduler) is passed to every running point as SIGTERM; each
ends its notebook, keeps the checkpoint of its last finished epoch, and is reported as interrupted
with that epoch, so that the same command resumes it.  Nothing here uses multiprocessing, so a stop
leaves no semaphore or pool behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from study.train import read_progress

POLL_SECONDS = 2.0
STOP_GRACE_SECONDS = 120.0  # a point given SIGTERM has this long to shut its kernel down before it is killed


@dataclass
class Point:
    """One grid point to run: what the worker executes, where it reports, and how long it should take."""

    run_id: str
    model: str
    notebook: str
    output: str  # the executed notebook, kept under <results>/notebooks
    parameters: dict[str, Any]
    log: Path | None  # the worker's output, written as it runs (None: this terminal, for `study train`)
    progress_dir: Path | None = None  # the training loop's checkpoint folder (None: no epochs, e.g. the GBT)
    estimate_seconds: float = 0.0
    retries: int = 0
    cwd: str = "."


@dataclass
class Outcome:
    """How a point ended: done, failed, interrupted (resumable from ``epoch``), left for later (not started),
    or held (not started: another worker holds its lock, named in ``error``)."""

    point: Point
    status: str
    seconds: float = 0.0
    attempts: int = 0
    error: str | None = None
    epoch: int = 0  # the last epoch its checkpoint holds


@dataclass
class _Running:
    point: Point
    process: subprocess.Popen
    started: float
    result_file: Path
    task_file: Path
    wall_started: float = field(default_factory=time.time)
    progress: dict = field(default_factory=dict)


class LocalExecutor:
    """Points as processes of this machine: each with ``threads`` CPU threads and, in turn, one of ``gpus``."""

    def __init__(self, *, threads: int, gpus: Sequence[str | None] = (None,)) -> None:
        self.threads = max(1, int(threads))
        self.gpus = list(gpus) or [None]

    def environment(self, slot: int) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(self.threads))  # a user's own setting wins
        gpu = self.gpus[slot % len(self.gpus)]
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu  # the run's device auto is then this GPU alone
        env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
        return env

    def start(self, point: Point, slot: int) -> _Running:
        task_file, result_file = write_task(point)
        log = open(point.log, "w")
        try:
            process = subprocess.Popen([sys.executable, "-m", "study.worker", str(task_file)], stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=point.cwd,
                                       env=self.environment(slot), start_new_session=True)
        finally:
            log.close()
        return _Running(point, process, time.monotonic(), result_file, task_file)


def write_task(point: Point) -> tuple[Path, Path]:
    """The worker's task file beside the point's log, and where the worker will write its outcome."""
    point.log.parent.mkdir(parents=True, exist_ok=True)
    handle, result_file = tempfile.mkstemp(prefix=f".{point.run_id}-", suffix=".result.json", dir=point.log.parent)
    os.close(handle)
    Path(result_file).unlink()
    task = {"notebook": point.notebook, "output": point.output, "parameters": point.parameters,
            "retries": point.retries, "cwd": point.cwd, "result": result_file}
    task_file = Path(result_file).with_suffix(".task")
    task_file.write_text(json.dumps(task))
    return task_file, Path(result_file)


class _StopRequest:
    """Turns SIGINT / SIGTERM into a flag the loop reads, while it runs; the old handlers come back after."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._note)
            except ValueError:  # not the main thread: no handler of ours
                pass
        return self

    def _note(self, signum, frame) -> None:
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def run_points(points: Sequence[Point], *, jobs: int, executor, display,
               deadline: float | None = None, poll_seconds: float = POLL_SECONDS,
               clock: Callable[[], float] = time.time,
               reestimate: Callable[[Point], float] | None = None,
               held: Callable[[Point], dict | None] | None = None) -> tuple[list[Outcome], int | None]:
    """Run ``points`` in order, ``jobs`` at a time; (their outcomes, the signal that stopped the batch or None).

    ``executor`` is a :class:`LocalExecutor` or a cluster's (study.slurm.SlurmExecutor).  ``deadline``
    (a ``clock()`` time) starts a point only if ``clock() + estimate`` is before it; ``reestimate``
    gives a point's estimate afresh just before that check, so that the runs finished meanwhile (a
    first run of a new size, say) count.  ``held`` says who else holds a point's lock (study.locks):
    such a point is left to that worker, with a message.
    """
    pending = list(points)
    running: dict[int, _Running] = {}  # slot -> run
    outcomes: list[Outcome] = []
    with _StopRequest() as stop:
        while (pending or running) and stop.signal is None:
            for slot in range(max(1, jobs)):
                if slot in running or not pending or stop.signal is not None:
                    continue
                point = _next_fitting(pending, deadline, clock, outcomes, display, reestimate, held)
                if point is None:
                    break
                running[slot] = executor.start(point, slot)
                display.started(point, slot, job=getattr(running[slot].process, "label", None))
            for slot, run in list(running.items()):
                _follow(run, display)
                if run.process.poll() is not None:
                    del running[slot]
                    outcome = _finished(run)
                    outcomes.append(outcome)
                    display.finished(outcome, eta=_eta(running.values(), pending, jobs, deadline, clock))
            if running and stop.signal is None:
                display.tick(eta=_eta(running.values(), pending, jobs, deadline, clock))
                time.sleep(poll_seconds)
        if stop.signal is not None:
            display.stopping(stop.signal, [run.point for run in running.values()])
            outcomes += _stop_all(list(running.values()))
            outcomes += [Outcome(point, "left") for point in pending]
    return outcomes, stop.signal


def _next_fitting(pending: list[Point], deadline: float | None, clock, outcomes: list[Outcome], display,
                  reestimate: Callable[[Point], float] | None = None,
                  held: Callable[[Point], dict | None] | None = None) -> Point | None:
    """The first pending point whose estimate fits before the deadline and that no other worker holds;
    those before it that do not fit are left, those held are left to their holder."""
    while pending:
        point = pending.pop(0)
        holder = held(point) if held is not None else None
        if holder is not None:
            outcomes.append(Outcome(point, "held", error=_holder_text(holder)))
            display.held(point, _holder_text(holder))
            continue
        if reestimate is not None:
            point.estimate_seconds = reestimate(point)
        if deadline is None or clock() + point.estimate_seconds <= deadline:
            return point
        outcomes.append(Outcome(point, "left"))
        display.left(point, max(0.0, deadline - clock()))
    return None


def _holder_text(holder: dict) -> str:
    from study.locks import describe

    return describe(holder)


def _follow(run: _Running, display) -> None:
    if run.point.progress_dir is None:
        return
    event = read_progress(run.point.progress_dir)
    if event and event.get("time", 0) >= run.wall_started - 1.0 and event != run.progress:  # not an older run's
        run.progress = event
        display.progress(run.point, event, elapsed=time.monotonic() - run.started)


def _finished(run: _Running) -> Outcome:
    seconds = time.monotonic() - run.started
    status = run.process.returncode
    record = {}
    try:
        record = json.loads(run.result_file.read_text())
    except (OSError, ValueError):
        pass
    finally:
        run.result_file.unlink(missing_ok=True)
        run.task_file.unlink(missing_ok=True)
    epoch = int((run.progress or {}).get("epoch", 0))
    if status == 0 and record.get("error") is None and record:
        return Outcome(run.point, "done", seconds, record.get("attempts", 1), epoch=epoch)
    if status in (143, -signal.SIGTERM, -signal.SIGKILL, 130, -signal.SIGINT) and not record:
        return Outcome(run.point, "interrupted", seconds, error=f"stopped (exit status {status})", epoch=_epoch(run))
    error = record.get("error") or f"the worker exited with status {status} (see {run.point.log})"
    return Outcome(run.point, "failed", seconds, record.get("attempts", 1), error, epoch=_epoch(run))


def _epoch(run: _Running) -> int:
    event = read_progress(run.point.progress_dir) if run.point.progress_dir is not None else None
    return int(event.get("epoch", 0)) if event else 0


def _stop_all(runs: list[_Running]) -> list[Outcome]:
    """SIGTERM to every running point's session, then wait for each to keep what it has (killed after a grace)."""
    for run in runs:
        _signal_session(run.process, signal.SIGTERM)
    limit = time.monotonic() + STOP_GRACE_SECONDS
    for run in runs:
        try:
            run.process.wait(timeout=max(1.0, limit - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_session(run.process, signal.SIGKILL)
            run.process.wait()
    outcomes = []
    for run in runs:
        outcome = _finished(run)
        if outcome.status == "failed" and run.process.returncode != 1:
            outcome.status = "interrupted"
        outcomes.append(outcome)
    return outcomes


def _signal_session(process, signum: int) -> None:
    if hasattr(process, "signal_session"):  # a job of a cluster's scheduler (study.slurm.SlurmJob)
        process.signal_session(signum)
        return
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _eta(running, pending: Sequence[Point], jobs: int, deadline: float | None = None,
         clock: Callable[[], float] = time.time) -> float:
    """Seconds until the last point ends: each running point's estimate less its time so far, then each
    waiting point on the first slot to free, in the order the batch starts them.  With a deadline, the
    points that would not fit by then are left out, as the batch will leave them."""
    now = time.monotonic()
    slots = [max(0.0, run.point.estimate_seconds - (now - run.started)) for run in running]
    slots += [0.0] * max(0, max(1, jobs) - len(slots))
    budget = None if deadline is None else deadline - clock()
    for point in pending:
        start = min(slots)
        if budget is None or start + point.estimate_seconds <= budget:
            slots[slots.index(start)] = start + point.estimate_seconds
    return max(slots)


__all__ = ["LocalExecutor", "Outcome", "Point", "run_points", "write_task"]
