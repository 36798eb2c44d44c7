"""One worker per run: a lock per run id in the results store, so that many workers can share one store.

Workers on several machines (a SLURM array, two ``study batch`` in two terminals) may reach the
same grid point.  Before a run trains, its worker takes ``<results>/.locks/<run_id>.lock``
(filelock: ``flock`` on a local disk, NFSv4 or Lustre); a second worker that reaches the point
waits, then finds the run stored and skips it.  ``study batch`` asks first, and leaves a point that
another worker holds to that worker with a message.

The kernel releases a dead worker's ``flock``, so a killed worker never blocks a point.  Its
``.holder`` file (host, pid, start time) stays behind, which is how the next worker knows it
took over a lock whose holder stopped without releasing it, and says so; the run itself resumes
from its checkpoint as any interrupted run does.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout

from study.atomic import atomic_open

LOCKS_DIR = ".locks"  # hidden, and outside runs/: a run folder's readers never meet it


def lock_path(results_dir: str | Path, run_id: str) -> Path:
    """``<results>/.locks/<run_id>.lock``: beside the run folders, not among them."""
    from study.results import runs_dir
    return runs_dir(results_dir).parent / LOCKS_DIR / f"{run_id}.lock"


def _holder_path(lock: Path) -> Path:
    return lock.with_suffix(".holder")


def _read_holder(lock: Path) -> dict | None:
    try:
        return json.loads(_holder_path(lock).read_text())
    except (OSError, ValueError):
        return None


def describe(holder: dict | None) -> str:
    """``pid 4242 on node07 since 12:31`` (or ``another worker`` when the holder wrote nothing yet)."""
    if not holder:
        return "another worker"
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(holder.get("since", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} since {since}"


def held_by(results_dir: str | Path, run_id: str) -> dict | None:
    """Who holds ``run_id``'s lock now (its holder record, ``{}`` when unreadable), or None when it is free."""
    path = lock_path(results_dir, run_id)
    if not path.exists():
        return None
    probe = FileLock(path, is_singleton=True)
    if probe.is_locked:  # held by this process: free for it
        return None
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return _read_holder(path) or {}
    probe.release()
    return None


@contextmanager
def run_lock(results_dir: str | Path, run_id: str, *, announce: Callable[[str], None] | None = None,
             poll_seconds: float = 5.0) -> Iterator[None]:
    """Hold ``run_id``'s lock for the block, waiting for another worker that holds it.

    Re-entrant within a process (recording a run inside its training's lock).  ``announce`` (default:
    a line on standard error) is told when the worker waits and when it takes over a dead holder's lock.
    """
    say = announce or (lambda text: print(text, file=sys.stderr, flush=True))
    path = lock_path(results_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, is_singleton=True)
    outer = not lock.is_locked
    if outer:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            say(f"{run_id}: waiting for {describe(_read_holder(path))}, which is running it (lock {path})")
            lock.acquire(poll_interval=poll_seconds)
        previous = _read_holder(path)
        if previous is not None:
            say(f"{run_id}: took over the lock of {describe(previous)}, which stopped without releasing it")
        _write_holder(path)
    else:
        lock.acquire()  # the count of a lock this process holds
    try:
        yield
    finally:
        if outer:
            _holder_path(path).unlink(missing_ok=True)
        lock.release()


def _write_holder(lock: Path) -> None:
    record = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
              "job": os.environ.get("SLURM_JOB_ID")}
    with atomic_open(_holder_path(lock), "w") as stream:
        json.dump(record, stream)
