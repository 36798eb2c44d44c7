"""One results store and one audio cache shared by many worker processes (study.locks, study.results, the cache).

Every case runs real processes: locks between threads of one process prove nothing about workers
on several machines.  Faults covered: two writers of one store, a writer killed mid-write (also in
test_results.py), a worker killed holding a run's lock, a cache builder killed while another waits.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from study import results
from study.config import preset_config
from study.data.cache import AudioCache
from study.locks import held_by, lock_path, run_lock
from tests.test_cache import KILLED_BUILD, logged

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def python(script: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *map(str, args)], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, seconds: float = 60.0) -> None:
    limit = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > limit:
            raise AssertionError("timed out")
        time.sleep(0.02)


HOLD = """
import sys, time
from pathlib import Path
from study.locks import run_lock
results_dir, run_id, seconds, flag = sys.argv[1], sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])
with run_lock(results_dir, run_id):
    flag.write_text("held")
    time.sleep(seconds)
"""


# ---- a run's lock ---------------------------------------------------------------------------------
def test_a_second_worker_waits_for_the_holder_and_is_told_who_holds_it(tmp_path):
    flag = tmp_path / "flag"
    holder = python(HOLD, tmp_path, "run-a", 2.0, flag)
    wait_for(flag.exists)
    seen = held_by(tmp_path, "run-a")
    assert seen is not None and seen["pid"] == holder.pid
    said: list[str] = []
    started = time.monotonic()
    with run_lock(tmp_path, "run-a", announce=said.append, poll_seconds=0.05):
        waited = time.monotonic() - started
    assert holder.wait(timeout=60) == 0
    assert waited > 1.0  # most of the holder's 2 s
    assert len(said) == 1 and said[0].startswith(f"run-a: waiting for pid {holder.pid} on ")
    assert held_by(tmp_path, "run-a") is None  # released, and the holder record removed
    assert not lock_path(tmp_path, "run-a").with_suffix(".holder").exists()


def test_the_lock_of_a_killed_worker_is_taken_over_at_once_and_said(tmp_path):
    flag = tmp_path / "flag"
    victim = python(HOLD, tmp_path, "run-b", 600, flag)
    wait_for(flag.exists)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    said: list[str] = []
    started = time.monotonic()
    with run_lock(tmp_path, "run-b", announce=said.append):
        assert time.monotonic() - started < 5  # the kernel released the dead worker's lock
    assert len(said) == 1 and said[0].startswith(f"run-b: took over the lock of pid {victim.pid} on ")
    assert "stopped without releasing it" in said[0]


def test_a_run_lock_is_reentrant_in_its_process_and_other_runs_are_not_blocked(tmp_path):
    flag = tmp_path / "flag"
    holder = python(HOLD, tmp_path, "run-c", 600, flag)
    try:
        wait_for(flag.exists)
        with run_lock(tmp_path, "run-d"):
            with run_lock(tmp_path, "run-d"):  # recording a run inside its training's lock
                assert held_by(tmp_path, "run-d") is None  # this process's own lock: free for it
        assert held_by(tmp_path, "run-c") is not None
    finally:
        holder.kill()
        holder.wait()


# ---- many writers of one results folder ------------------------------------------------------------
WRITE = """
import sys, time
from pathlib import Path
sys.path.insert(0, "tests")
from study.config import preset_config
from test_results import _write
root, seed, start, overwrite = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
cfg = preset_config("smoke").with_overrides(seed=seed)
while time.time() < start:  # every writer starts at the same moment
    time.sleep(0.001)
try:
    _write(root, cfg, 0.5 + seed / 100, overwrite=overwrite)
    print("stored", cfg.run_id)
except FileExistsError as error:
    print("refused", error)
"""


def test_writers_of_different_runs_at_once_lose_nothing(tmp_path):
    start = time.time() + 3.0
    writers = [python(WRITE, tmp_path, seed, start, 0) for seed in range(6)]
    outputs = [writer.communicate(timeout=120) for writer in writers]
    assert all(writer.returncode == 0 for writer in writers), outputs
    runs = results.load_runs(tmp_path)
    assert sorted(runs["seed"]) == list(range(6))
    assert sorted(runs["roc_auc"].round(2)) == [0.5 + seed / 100 for seed in range(6)]
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("overwrite", [True, False])
def test_two_writers_of_one_run_at_once_leave_one_complete_run(tmp_path, overwrite):
    start = time.time() + 3.0
    writers = [python(WRITE, tmp_path, 7, start, int(overwrite)) for _ in range(2)]
    outputs = [writer.communicate(timeout=120)[0] for writer in writers]
    assert all(writer.returncode == 0 for writer in writers), outputs
    said = sorted(line.split()[0] for line in outputs)
    assert said == (["stored", "stored"] if overwrite else ["refused", "stored"])
    if not overwrite:
        assert "another writer stored this run meanwhile" in "".join(outputs) or "already exists" in "".join(outputs)
    run_id = preset_config("smoke").with_overrides(seed=7).run_id
    assert results.is_complete(tmp_path / "runs" / run_id)
    assert [p.name for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")] == [run_id]
    assert results.load_runs(tmp_path)["run_id"].tolist() == [run_id]


# ---- one audio cache, many workers -------------------------------------------------------------------
def build_in_process(script: Path, folder: Path, pause: float, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(folder), str(pause), str(log)], cwd=REPO, env=ENV)


def test_two_workers_building_one_cache_decode_each_track_once(tmp_path):
    folder, script = tmp_path / "c", tmp_path / "build.py"
    script.write_text(textwrap.dedent(KILLED_BUILD))
    builders = [build_in_process(script, folder, 0.01, tmp_path / f"decoded-{k}.txt") for k in range(2)]
    assert [builder.wait(timeout=300) for builder in builders] == [0, 0]
    decoded = logged(tmp_path / "decoded-0.txt") + logged(tmp_path / "decoded-1.txt")
    assert sorted(decoded) == sorted(f"t{k}" for k in range(40))  # each track once, by one worker or the other
    cache = AudioCache.open(folder)
    for k in range(40):
        np.testing.assert_array_equal(cache.read(f"t{k}"), np.full(2000 + k, k, np.float32))


def test_a_builder_killed_while_another_waits_leaves_a_cache_the_waiter_finishes(tmp_path):
    folder, script = tmp_path / "c", tmp_path / "build.py"
    script.write_text(textwrap.dedent(KILLED_BUILD))
    first = build_in_process(script, folder, 0.1, tmp_path / "first.txt")
    wait_for(lambda: len(logged(tmp_path / "first.txt")) >= 4)
    waiter = build_in_process(script, folder, 0.0, tmp_path / "second.txt")  # blocks on the builder's lock
    time.sleep(1.0)
    assert waiter.poll() is None and not logged(tmp_path / "second.txt")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert waiter.wait(timeout=300) == 0
    kept, finished = set(logged(tmp_path / "first.txt")), set(logged(tmp_path / "second.txt"))
    everything = {f"t{k}" for k in range(40)}
    assert finished | kept == everything and len(finished) < 40  # the waiter decoded only what was missing
    cache = AudioCache.open(folder)
    assert sorted(cache.track_ids) == sorted(everything)
    for k in range(40):
        np.testing.assert_array_equal(cache.read(f"t{k}"), np.full(2000 + k, k, np.float32))
