"""Where a study epoch's time goes: the default preset's own training run, its parts timed.

Runs ``study.experiment.run_experiment`` as ``study batch`` does (the default preset on the embedded
corpus, one thread), for a few epochs, and times the pieces that ``study.train.train`` calls:

    patch loading       the loader's batches of random patches (drawn from the audio cache)
    training steps      forward, loss, backward and Adam on those batches
    validation forward  the song-level pass over the validation clips (log-mel included)
    log-mel (valid)     of which the spectrogram's STFT and mel filterbank
    metrics             validation loss, ROC-AUC, PR-AUC and sqrt(MSE)
    checkpoint          best.pt / last.pt and progress.json
    other               the rest of the epoch's wall time

The first epoch is left out (numba compiles the training loops in it).  Training patches cost
``(patch loading + training steps) / patches`` each, the figure to compare with the step benchmark
(bench_speed.py).
Run: ``.venv/bin/python benchmarks/bench_epoch.py --models spectrogram,waveform --epochs 3``; with
``--jobs 2`` two runs at once, one process each, as ``study batch --jobs 2`` trains.  The last line is
JSON: the mean epoch, the share of it outside the training steps, and epochs per hour.
"""
from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

import study.train as train_module
from study.audio import LogMel
from study.config import RunConfig

PARTS = ("patch loading", "training steps", "validation forward", "log-mel (valid)", "metrics", "checkpoint", "other")


class Clock:
    """Seconds per part and per epoch, from wrappers around the functions one epoch calls."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.parts: list[dict[str, float]] = []
        self.marks: list[float] = []
        self.saved: list[float] = []  # when each epoch's checkpoint was written, its last step
        self.open = False  # between an epoch's start and its end: what runs after the last (the test) is not counted
        self.close_on_save = False  # an older commit, which has no end-of-epoch callback

    def add(self, part: str, seconds: float) -> None:
        if self.parts and self.open:
            self.parts[-1][part] += seconds

    def timed(self, part: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(part, time.perf_counter() - started)
        return wrapper


def install(clock: Clock) -> None:
    """Wrap what ``study.train.train`` calls, once per process; ``_train_epoch`` opens an epoch, the
    loader's batches are timed."""
    train_epoch, loader = train_module._train_epoch, train_module._loader

    def epoch(*args, **kwargs):
        clock.marks.append(time.perf_counter())
        clock.parts.append(defaultdict(float))
        clock.open = True
        started = time.perf_counter()
        try:
            return train_epoch(*args, **kwargs)
        finally:
            clock.add("training steps", time.perf_counter() - started)

    def timed_loader(*args, **kwargs):
        sampler, real = loader(*args, **kwargs)
        return sampler, TimedLoader(real, clock)

    save_epoch = train_module._save_epoch

    def saved(*args, **kwargs):
        try:
            return save_epoch(*args, **kwargs)
        finally:
            clock.saved.append(time.perf_counter())
            clock.open = clock.open and not clock.close_on_save

    train_module._train_epoch = epoch
    train_module._loader = timed_loader
    train_module._save_epoch = saved
    for name, part in (("predict_clips", "validation forward"), ("_validation_record", "metrics"),
                       ("_save_epoch", "checkpoint"), ("write_progress", "checkpoint")):
        if hasattr(train_module, name):  # an older commit (PYTHONPATH) may lack one
            setattr(train_module, name, clock.timed(part, getattr(train_module, name)))
    forward = LogMel.forward

    def logmel(self, waveform):
        if torch.is_grad_enabled():
            return forward(self, waveform)
        started = time.perf_counter()
        try:
            return forward(self, waveform)
        finally:
            clock.add("log-mel (valid)", time.perf_counter() - started)

    LogMel.forward = logmel


class TimedLoader:
    """The loader, with the time spent waiting for each batch counted as patch loading."""

    def __init__(self, loader, clock: Clock) -> None:
        self.loader, self.clock = loader, clock

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        batches = iter(self.loader)
        while True:
            started = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                self.clock.add("patch loading", time.perf_counter() - started)
            yield batch


def measure(clock: Clock, model: str, epochs: int, train_size: int, cache_dir: str, work: Path) -> dict:
    from study.experiment import run_experiment

    clock.reset()
    # the loss the study's grids train with (the preset's loss changed after them)
    cfg = RunConfig.from_flat("default", model=model, train_size=train_size, max_epochs=epochs, patience=epochs,
                              loss="bce", cache_dir=cache_dir)
    ends: list[float] = []
    if "on_epoch_end" in inspect.signature(run_experiment).parameters:
        def ended(epoch, record):
            ends.append(time.perf_counter())
            clock.open = False

        run_experiment(cfg, results_dir=work / "results", force=True, on_epoch_end=ended)
    else:  # an older commit: an epoch ends with its checkpoint
        clock.close_on_save = True
        run_experiment(cfg, results_dir=work / "results", force=True)
        ends = clock.saved
    rows = []
    for k, (parts, start, end) in enumerate(zip(clock.parts, clock.marks, ends)):
        parts = {p: parts.get(p, 0.0) for p in PARTS}
        parts["training steps"] -= parts["patch loading"]  # the loader's waits happen inside _train_epoch
        wall = end - start
        parts["other"] = wall - sum(v for p, v in parts.items() if p not in ("log-mel (valid)", "other"))
        rows.append({"epoch": k + 1, "wall": wall, **parts})
    measured = rows[1:] or rows
    mean = {p: sum(r[p] for r in measured) / len(measured) for p in ("wall",) + PARTS}
    patches = cfg.train.epoch_patches
    return {"model": model, "epochs_measured": len(measured), "first_left_out": len(rows) > 1,
            "patches": patches, "mean": mean,
            "ms_per_training_patch": 1000 * (mean["training steps"] + mean["patch loading"]) / patches,
            "epochs": rows}


def table(result: dict) -> str:
    mean = result["mean"]
    which = "after the first" if result["first_left_out"] else "with the compilation of the first"
    lines = [f"{result['model']}: {mean['wall']:.1f} s per epoch (mean of {result['epochs_measured']} epochs "
             f"{which}), {result['ms_per_training_patch']:.2f} ms per training patch",
             f"  {'part':<20} {'s/epoch':>8} {'share':>7}"]
    for part in PARTS:
        lines.append(f"  {part:<20} {mean[part]:8.2f} {100 * mean[part] / mean['wall']:6.1f}%")
    return "\n".join(lines)


def summary(results: list[dict], *, parallel: bool) -> dict:
    """One line's figures: the mean epoch, the share outside the training steps, and epochs per hour (the
    machine's throughput: runs side by side add up, runs one after another share the hour)."""
    walls = [r["mean"]["wall"] for r in results]
    outside = [1 - (r["mean"]["training steps"] + r["mean"]["patch loading"]) / r["mean"]["wall"] for r in results]
    per_hour = sum(3600 / w for w in walls) if parallel else 3600 * len(walls) / sum(walls)
    return {"epoch_s": sum(walls) / len(walls), "outside_step_share": sum(outside) / len(outside),
            "epochs_per_hour": per_hour, "models": [r["model"] for r in results]}


def side_by_side(args: argparse.Namespace) -> list[dict]:
    """``--jobs`` copies of this script at once, one model each (cycling through ``--models``), as
    ``study batch --jobs`` runs its points."""
    models = args.models.split(",")
    with tempfile.TemporaryDirectory() as work:
        files = [Path(work) / f"job{job}.json" for job in range(args.jobs)]
        jobs = [subprocess.Popen([sys.executable, __file__, "--models", models[job % len(models)], "--epochs",
                                  str(args.epochs), "--train-size", str(args.train_size), "--threads", str(args.threads),
                                  "--cache-dir", args.cache_dir, "--json", str(file)], stdout=subprocess.DEVNULL)
                for job, file in enumerate(files)]
        if any(job.wait() for job in jobs):
            raise SystemExit("a job failed")
        return [result for file in files for result in json.loads(file.read_text())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="spectrogram,waveform")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per model; the first is not counted")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (study batch: one per job)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each a process of its own")
    parser.add_argument("--cache-dir", default="cache/default", help="the corpus cache (built if missing)")
    parser.add_argument("--json", help="write the figures here as well")
    args = parser.parse_args(argv)
    if args.jobs > 1:
        results = side_by_side(args)
        for result in results:
            print(table(result), flush=True)
    else:
        torch.set_num_threads(args.threads)
        clock, results = Clock(), []
        install(clock)
        with tempfile.TemporaryDirectory() as work:
            for model in args.models.split(","):
                results.append(measure(clock, model, args.epochs, args.train_size, args.cache_dir, Path(work)))
                print(table(results[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(summary(results, parallel=args.jobs > 1)), flush=True)  # the last line: what bench_speed reads
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
