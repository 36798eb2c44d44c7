"""Progress bars on a terminal only, and the progress of a grid of runs.

A bar redraws itself with carriage returns; in a log file, an executed notebook or a batch run's
output (no terminal) that is thousands of lines of noise.  Every bar in the package comes from
:func:`progress_bar`, which draws only when standard error is a terminal; the lines that matter
(each epoch's metrics, skipped tracks, summaries) are printed either way.
"""
from __future__ import annotations

import shutil
import sys
import time
from typing import Any, Iterable

from tqdm import tqdm


def progress_bar(iterable: Iterable | None = None, *, show: bool = True, **options: Any) -> tqdm:
    """``tqdm(iterable, **options)`` writing to standard error, drawn only when ``show`` and that is a terminal."""
    stream = sys.stderr
    drawn = show and getattr(stream, "isatty", lambda: False)()
    return tqdm(iterable, disable=not drawn, file=stream, **options)


# ---- a grid of runs -------------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    """``1h05`` / ``12 min`` / ``40 s``: a time a reader takes in at a glance."""
    if seconds is None or seconds != seconds:
        return "?"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h{minutes:02d}"


class GridDisplay:
    """What ``study batch`` tells its user while a grid runs: a line per event, and a bar on a terminal.

    Events are a point started (with its estimate and where its log is written), an epoch of a
    running point (its validation value and best epoch so far), a point finished or failed, a
    point left for a later batch, and a stop.  Each line ends with where the grid stands: points
    done, running and to go, and the time left.  Without a terminal (a log, a scheduler's job
    output) that is all; on a terminal a bar of finished points is drawn below the lines too, never
    as carriage returns in a file.
    """

    def __init__(self, *, total: int, stream=None, tty: bool | None = None, clock=time.monotonic) -> None:
        self.stream = stream or sys.stdout
        self.tty = getattr(self.stream, "isatty", lambda: False)() if tty is None else tty
        self.total, self.done, self.failed, self.running, self.n_left = total, 0, 0, 0, 0
        self.clock, self.started_at, self.eta = clock, clock(), None
        self.followed: dict[str, int] = {}  # point -> the epoch its current start resumed after
        width = shutil.get_terminal_size(fallback=(100, 24)).columns  # a terminal that reports no size: 100
        self.bar = tqdm(total=total, file=self.stream, desc="points", unit="run", ncols=width,
                        bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {postfix}") if self.tty else None

    # the events
    def started(self, point, slot: int, job: str | None = None) -> None:
        self.running += 1
        where = f"; log {point.log}" if point.log else ""
        self._line(f"start {point.run_id} ({f'{job}, ' if job else ''}about {duration(point.estimate_seconds)}{where})")

    def progress(self, point, event: dict, elapsed: float) -> None:
        resumed = event.get("resumed_after") or 0
        if self.followed.get(point.run_id) != resumed:  # the first event seen of this start, whichever it is
            self.followed[point.run_id] = resumed
            if resumed:
                self._line(f"{point.run_id}: resumed after epoch {resumed}")
        if event.get("event") == "start":
            return
        best, selection = event.get("best_metric"), str(event.get("selection", ""))
        name = selection.lstrip("-")  # '-valid_loss': the loss, negated so that higher is better
        shown = "?" if best is None else f"{-best if selection.startswith('-') else best:.4f}"
        ending = f", stopped: {event['stop_reason']}" if event.get("finished") else ""
        self._line(f"{point.run_id}: epoch {event['epoch']}/{event.get('max_epochs', '?')}, best {name} {shown} "
                   f"at epoch {event.get('best_epoch')} ({event.get('bad_epochs', 0)} of {event.get('patience', '?')} "
                   f"epochs without a better one), {duration(event.get('epoch_seconds'))} per epoch{ending}")

    def finished(self, outcome, eta: float | None = None) -> None:
        self.running -= 1
        self.eta = eta
        if outcome.status == "done":
            self.done += 1
            self._line(f"done {outcome.point.run_id} in {duration(outcome.seconds)} "
                       f"(estimate {duration(outcome.point.estimate_seconds)})")
        elif outcome.status == "interrupted":
            self._line(f"interrupted {outcome.point.run_id} after {duration(outcome.seconds)}: "
                       + (f"resumes after epoch {outcome.epoch}" if outcome.epoch else "starts again"))
        else:
            self.failed += 1
            self._line(f"FAILED {outcome.point.run_id} after {duration(outcome.seconds)}: {outcome.error} "
                       f"(log {outcome.point.log})")
        if self.bar is not None:
            self.bar.update()

    def left(self, point, time_left: float) -> None:
        self.n_left += 1
        self._line(f"left for later: {point.run_id} (about {duration(point.estimate_seconds)}, "
                   f"{duration(time_left)} of the time budget left)")

    def held(self, point, holder: str) -> None:
        self.n_left += 1
        self._line(f"left to another worker: {point.run_id} is being run by {holder}")

    def stopping(self, signum: int, points) -> None:
        name = {2: "Ctrl-C", 15: "SIGTERM"}.get(int(signum), f"signal {int(signum)}")
        self._line(f"{name}: stopping {len(points)} running point(s); each keeps its last finished epoch")

    def tick(self, eta: float | None) -> None:
        self.eta = eta
        if self.bar is not None:
            self.bar.set_postfix_str(self._status(), refresh=True)

    def note(self, text: str) -> None:
        self._line(text, status=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    # drawing
    def _status(self) -> str:
        to_go = self.total - self.done - self.failed - self.running - self.n_left
        eta = f", {duration(self.eta)} to go" if self.eta is not None and (self.running or to_go > 0) else ""
        return (f"{self.done}/{self.total} done, {self.running} running, {max(0, to_go)} waiting"
                f"{f', {self.failed} failed' if self.failed else ''} | {duration(self.clock() - self.started_at)} "
                f"elapsed{eta}")

    def _line(self, text: str, *, status: bool = True) -> None:
        line = f"{text}  [{self._status()}]" if status else text
        if self.bar is not None:
            self.bar.set_postfix_str(self._status(), refresh=False)
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
