"""One grid point in a process of its own: ``python -m study.worker TASK.json``.

``study batch`` starts one of these per point (:mod:`study.scheduler`).  The worker executes the
point's notebook with papermill, streaming the kernel's output to its own standard output as it
comes (the scheduler sends that to the point's log file, so a user can follow one run with
``tail -f``), and writes the outcome as JSON where the task says.  A SIGTERM (a scheduler's stop, or
the batch passing on a Ctrl-C) ends the notebook as a Ctrl-C would: the kernel is shut down, the
run keeps the checkpoint of its last finished epoch, and the worker exits with status 143.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
from dataclasses import asdict
from pathlib import Path

INTERRUPTED_STATUS = 143  # 128 + SIGTERM, as a shell reports a process ended by it


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m study.worker TASK.json", file=sys.stderr)
        return 2
    task = json.loads(Path(argv[0]).read_text())
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # a terminal's Ctrl-C reaches the whole process group
    signal.signal(signal.SIGUSR2, _interrupt)  # SLURM's warning before a job's time limit (study.slurm)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)
    from study.batch import execute_notebook

    try:
        result = execute_notebook(task["notebook"], task["output"], task["parameters"], retries=task["retries"],
                                  cwd=task["cwd"], log_output=True)
    except KeyboardInterrupt:
        print("interrupted: the run keeps the checkpoint of its last finished epoch", flush=True)
        return INTERRUPTED_STATUS
    record = {**asdict(result), "output": str(result.output)}
    Path(task["result"]).write_text(json.dumps(record) + "\n")
    return 0 if result.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
