"""study.scheduler and study.progress.GridDisplay: points in processes of their own, a time budget, a clean stop,
and what a user sees (a line per event without a terminal, a bar on one, no warnings)."""
from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from study.progress import GridDisplay, duration
from study.scheduler import LocalExecutor, Point, _eta, _Running, run_points

REPO = Path(__file__).resolve().parents[1]


class ScriptExecutor(LocalExecutor):
    """Each point runs a short Python script instead of a notebook: it writes the worker's result file
    (or fails) after ``parameters['sleep']`` seconds."""

    def __init__(self) -> None:
        super().__init__(threads=1)
        self.started: list[str] = []

    def start(self, point: Point, slot: int) -> _Running:
        self.started.append(point.run_id)
        result = point.log.with_suffix(".result.json")
        task = point.log.with_suffix(".task")
        task.write_text("{}")
        record = json.dumps({"output": point.output, "attempts": 1, "error": point.parameters.get("error"),
                             "seconds": 0.0})
        script = (f"import time, pathlib; time.sleep({point.parameters.get('sleep', 0.1)}); "
                  f"pathlib.Path({str(result)!r}).write_text({record!r}); "
                  f"raise SystemExit({1 if point.parameters.get('error') else 0})")
        process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
        return _Running(point, process, time.monotonic(), result, task)


def points(tmp_path: Path, *specs: tuple[str, float, dict]) -> list[Point]:
    return [Point(run_id=name, model="waveform", notebook="nb.ipynb", output=str(tmp_path / f"{name}.ipynb"),
                  parameters=parameters, log=tmp_path / f"{name}.log", estimate_seconds=estimate)
            for name, estimate, parameters in specs]


def test_a_time_budget_starts_only_the_points_that_fit_and_leaves_the_rest_for_later(tmp_path):
    executor, out = ScriptExecutor(), io.StringIO()
    todo = points(tmp_path, ("long", 600.0, {}), ("short", 5.0, {}), ("longer", 900.0, {}), ("also-short", 4.0, {}))
    outcomes, stopped = run_points(todo, jobs=1, executor=executor, display=GridDisplay(total=4, stream=out),
                                   deadline=time.time() + 60, poll_seconds=0.05)
    assert stopped is None
    assert executor.started == ["short", "also-short"]  # a shorter point after one that does not fit still starts
    status = {outcome.point.run_id: outcome.status for outcome in outcomes}
    assert status == {"long": "left", "short": "done", "longer": "left", "also-short": "done"}
    text = out.getvalue()
    assert "left for later: long (about 10 min" in text and "left for later: longer (about 15 min" in text


def test_a_failed_point_is_reported_with_its_log_and_the_others_go_on(tmp_path):
    executor, out = ScriptExecutor(), io.StringIO()
    todo = points(tmp_path, ("bad", 1.0, {"error": "ValueError: broken"}), ("good", 1.0, {}), ("good2", 1.0, {}))
    outcomes, _ = run_points(todo, jobs=2, executor=executor, display=GridDisplay(total=3, stream=out),
                             poll_seconds=0.05)
    status = {outcome.point.run_id: outcome.status for outcome in outcomes}
    assert status == {"bad": "failed", "good": "done", "good2": "done"}
    assert f"FAILED bad after" in out.getvalue() and str(tmp_path / "bad.log") in out.getvalue()
    assert "3/3" not in out.getvalue().splitlines()[-1] or "1 failed" in out.getvalue().splitlines()[-1]


def test_a_point_another_worker_holds_is_left_to_it_with_who_holds_it(tmp_path):
    executor, out = ScriptExecutor(), io.StringIO()
    todo = points(tmp_path, ("mine", 1.0, {}), ("theirs", 1.0, {}))
    holder = {"pid": 4242, "host": "node07", "since": time.time()}
    outcomes, _ = run_points(todo, jobs=2, executor=executor, display=GridDisplay(total=2, stream=out),
                             poll_seconds=0.05, held=lambda point: holder if point.run_id == "theirs" else None)
    assert executor.started == ["mine"]
    assert {outcome.point.run_id: outcome.status for outcome in outcomes} == {"mine": "done", "theirs": "held"}
    assert "left to another worker: theirs is being run by pid 4242 on node07 since " in out.getvalue()


def test_the_display_says_where_the_grid_stands_on_every_line_and_draws_a_bar_only_on_a_terminal(tmp_path):
    point = points(tmp_path, ("p", 120.0, {}))[0]
    out = io.StringIO()
    display = GridDisplay(total=2, stream=out, tty=False)
    display.started(point, 0)
    display.progress(point, {"event": "epoch", "epoch": 3, "max_epochs": 100, "selection": "-valid_loss",
                             "best_metric": -0.2513, "best_epoch": 2, "bad_epochs": 1, "patience": 5,
                             "epoch_seconds": 46.5}, elapsed=150)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0].startswith("start p (about 2 min; log ") and lines[0].endswith("0/2 done, 1 running, 1 waiting | 0 s elapsed]")
    assert "epoch 3/100, best valid_loss 0.2513 at epoch 2 (1 of 5 epochs without a better one), 46 s per epoch" in lines[1]
    on_terminal = io.StringIO()
    GridDisplay(total=2, stream=on_terminal, tty=True).started(point, 0)
    assert "points 0/2" in on_terminal.getvalue() and "\r" in on_terminal.getvalue()


def test_a_resume_is_shown_even_when_the_first_event_seen_is_an_epoch(tmp_path):
    # the display polls progress.json: on a fast machine the start event is overwritten before it is read
    point = points(tmp_path, ("p", 120.0, {}))[0]
    out = io.StringIO()
    display = GridDisplay(total=1, stream=out, tty=False)
    epoch = {"event": "epoch", "epoch": 8, "max_epochs": 100, "selection": "valid_roc_auc", "best_metric": 0.8,
             "best_epoch": 8, "bad_epochs": 0, "patience": 5, "epoch_seconds": 3.0, "resumed_after": 7}
    display.progress(point, epoch, elapsed=5)
    display.progress(point, {**epoch, "epoch": 9, "bad_epochs": 1}, elapsed=8)
    lines = out.getvalue().splitlines()
    assert [line.split("  [")[0] for line in lines[:1]] == ["p: resumed after epoch 7"]
    assert len(lines) == 3 and "epoch 8/100" in lines[1] and "epoch 9/100" in lines[2]
    fresh = io.StringIO()
    GridDisplay(total=1, stream=fresh, tty=False).progress(point, {**epoch, "resumed_after": 0}, elapsed=5)
    assert "resumed" not in fresh.getvalue()


def test_the_time_left_counts_the_waiting_points_in_order_and_within_the_time_budget(tmp_path):
    running = [_Running(point, None, time.monotonic() - 100, tmp_path / "r", tmp_path / "t")
               for point in points(tmp_path, ("a", 400, {}))]
    waiting = points(tmp_path, ("b", 600, {}), ("c", 200, {}), ("d", 250, {}))
    # slots free at 300 and 0: b from 0 to 600, c from 300 to 500, d from 500 to 750
    assert _eta(running, waiting, 2) == pytest.approx(750, abs=1)
    # a budget of 700 s leaves d (it would end at 750) for later, as the batch will
    assert _eta(running, waiting, 2, deadline=1_000.0 + 700, clock=lambda: 1_000.0) == pytest.approx(600, abs=1)
    assert _eta([], [], 2) == 0


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (40, 600, 3900, None)] == ["40 s", "10 min", "1h05", "?"]


# ---- a real batch: smoke runs through papermill in processes of their own ---------------------------
def long_smoke_grid(tmp_path: Path, max_epochs: int) -> Path:
    grid = tmp_path / "long.yaml"
    grid.write_text(textwrap.dedent(f"""\
        notebook: {REPO / 'notebooks' / '01_experiment.ipynb'}
        preset: smoke
        overrides: {{max_epochs: {max_epochs}, patience: {max_epochs}, cache_dir: {tmp_path / 'cache'}}}
        grid:
          - {{model: [spectrogram], train_size: [20], seed: [0]}}
        """))
    return grid


def batch_command(grid: Path, tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "study", "batch", str(grid), "--results-dir", str(tmp_path / "results"),
            "--no-report", "--jobs", "1"]


def warning_lines(text: str) -> list[str]:
    """Warnings, and the log lines of the machinery ("[IPKernelApp] ERROR | ...") that a user cannot act on."""
    return [line for line in text.splitlines()
            if "warning" in line.lower() or re.match(r"\[\w+\] (ERROR|CRITICAL)\b", line)]


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def start_batch(command: list[str], *, epochs: int) -> tuple[subprocess.Popen, list[str]]:
    """A batch in the background, and its output read until it has shown ``epochs`` epoch lines."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                               env=ENV)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if sum(": epoch " in seen for seen in lines) >= epochs:
            break
    return process, lines


def test_a_sigterm_stops_the_batch_keeps_the_epochs_and_the_same_command_resumes(tmp_path):
    process, lines = start_batch(batch_command(long_smoke_grid(tmp_path, max_epochs=60), tmp_path), epochs=2)
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=300)
    output = "".join(lines) + rest
    assert process.returncode == 143, output
    assert "estimate: about" in output and "stop with Ctrl-C (or SIGTERM)" in output
    assert "SIGTERM: stopping 1 running point(s)" in output
    assert "interrupted smoke-corpus-spectrogram-n20-s0-" in output and "resumes after epoch" in output
    assert f"to go on: study batch" in output
    assert warning_lines(output) == [] and "leaked" not in output
    assert not list((tmp_path / "results" / "runs").glob("*/COMPLETE")) if (tmp_path / "results" / "runs").exists() else True

    kept = int(output.split("resumes after epoch ")[1].split()[0])
    # the point resumes where it stopped: one more short batch finishes it from its checkpoint
    short = long_smoke_grid(tmp_path, max_epochs=60)
    again = subprocess.run(batch_command(short, tmp_path), capture_output=True, text=True, cwd=REPO, env=ENV,
                           timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resumed after epoch {kept}" in again.stdout
    assert warning_lines(again.stdout + again.stderr) == []


def test_two_batches_sharing_one_store_train_a_point_once(tmp_path):
    # The first batch's run is long enough that it still holds the point's lock when the second has started,
    # read the store and finished, however fast the machine; it is stopped once the second has had its look.
    grid = long_smoke_grid(tmp_path, max_epochs=60)
    first, lines = start_batch(batch_command(grid, tmp_path), epochs=1)  # its worker holds the point's lock now
    second = subprocess.run(batch_command(grid, tmp_path), capture_output=True, text=True, cwd=REPO, env=ENV,
                            timeout=600)
    first.send_signal(signal.SIGTERM)
    rest, _ = first.communicate(timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "left to another worker: smoke-corpus-spectrogram-n20-s0-" in second.stdout
    assert "is being run by pid " in second.stdout and "left to other workers 1" in second.stdout
    assert "start smoke-corpus-spectrogram-n20-s0-" not in second.stdout  # the second never trained it
    assert first.returncode == 143 and "interrupted smoke-corpus-spectrogram-n20-s0-" in "".join(lines) + rest
    assert not list((tmp_path / "results" / "runs").glob("*/COMPLETE"))


def test_study_train_alone_shows_the_batch_display_an_estimate_then_a_line_per_epoch(tmp_path):
    command = [sys.executable, "-m", "study", "train", "--preset", "smoke", "--model", "spectrogram",
               "--train_size", "20", "--max_epochs", "3", "--patience", "3", "--cache_dir", str(tmp_path / "cache"),
               "--results-dir", str(tmp_path / "results")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    lines = lines[next(number for number, line in enumerate(lines) if line.startswith("estimate: ")):]
    assert lines[0].startswith("estimate: none yet (") and "stop with Ctrl-C (or SIGTERM)" in lines[1]
    run_id = lines[2].split()[1]
    assert lines[2].startswith(f"start {run_id} (about ?)")
    shown = [line for line in lines if line.startswith(f"{run_id}: epoch ")]
    assert len(shown) == 3 and all("[0/1 done, 1 running, 0 waiting | " in line for line in shown)
    assert shown[-1].split("  [")[0].endswith("stopped: epoch cap")
    assert any(line.startswith(f"done {run_id} in ") for line in lines)
    assert warning_lines(done.stdout + done.stderr) == []
    # a second run of the same size now has a stored epoch time: its estimate comes from it
    again = subprocess.run(command[:-6] + ["--seed", "1"] + command[-6:], capture_output=True, text=True, cwd=REPO,
                           timeout=600)
    estimated = [line for line in again.stdout.splitlines() if line.startswith("estimate: ")]
    assert again.returncode == 0 and estimated[0].startswith("estimate: about "), again.stdout
    assert "epochs: median of 1 stored run(s); epoch time: " in estimated[0]


def test_on_a_pseudo_terminal_the_batch_draws_a_bar(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    grid = long_smoke_grid(tmp_path, max_epochs=1)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a terminal of 160 columns
    process = subprocess.Popen(batch_command(grid, tmp_path), stdin=follower, stdout=follower, stderr=follower,
                               cwd=REPO, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the batch is over
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=600)
    os.close(leader)
    text = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0, text
    assert "points 0/1 |" in text and "points 1/1 |" in text  # the bar, redrawn in place
    assert "done smoke-corpus-spectrogram-n20-s0-" in text


def test_each_point_is_estimated_afresh_before_it_starts(tmp_path):
    """A point's estimate may change while the batch runs (a finished run of its size is a better basis)."""
    executor, out = ScriptExecutor(), io.StringIO()
    todo = points(tmp_path, ("first", 5.0, {}), ("second", 5.0, {}))
    fresh = {"first": 5.0, "second": 900.0}  # by the time 'second' starts, its basis says 15 minutes
    outcomes, _ = run_points(todo, jobs=1, executor=executor, display=GridDisplay(total=2, stream=out),
                             deadline=time.time() + 60, poll_seconds=0.05,
                             reestimate=lambda point: fresh[point.run_id])
    assert [outcome.status for outcome in outcomes] == ["done", "left"]
    assert "left for later: second (about 15 min" in out.getvalue()
