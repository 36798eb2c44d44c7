"""Batch reruns: a YAML grid of configurations, each run through the experiment notebook.

A grid file names the notebook that runs one configuration, the preset it starts from, the
parameter grids (each entry a cartesian product of value lists), optional ``overrides`` applied
to every point, and the report notebooks that turn the finished runs into tables and figures::

    notebook: notebooks/01_experiment.ipynb
    preset: default
    jobs: 2                      # optional: runs in parallel unless --jobs says otherwise
    outputs: smoke               # optional: reports write to figures/smoke/ and results/tables/smoke/
    overrides: {dataset: corpus} # optional: added to every point
    grid:
      - {model: [spectrogram, waveform], train_size: [100, 1000], seed: [0, 1, 2]}
      - {model: [gbt], train_size: [1000], seed: [0]}
    reports:
      - notebooks/02_data_scale.ipynb
      - {notebook: notebooks/03_mtt_capacity.ipynb, parameters: {grid: grids/mtt.yaml}}

Each point becomes ``RunConfig.from_flat(preset, **point)``; a point whose run folder is already
complete for the same data (``study.results.reusable_run``) is skipped, the others are executed by
papermill (the executed copy is kept as ``<results_dir>/notebooks/<run_id>.ipynb``) and retried
when they fail.  String values may name environment variables (``data_root: $MTT_ROOT``) so
machine paths stay out of the grid files.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from study.config import DataConfig, RunConfig, config_from_parameters, field_comments
from study.data import READERS, Collection, load_collection
from study.data.cache import ensure_cache
from study.estimate import estimate, job_threads, wall_seconds
from study.experiment import run_experiment
from study.gbt import run_gbt
from study.models import GBT, MODEL_NAMES
from study.paths import REPOSITORY_ROOT, portable_path, resolve_path
from study.results import reusable_run

GRIDS_DIR = REPOSITORY_ROOT / "grids"
KERNEL = "python3"  # the kernelspec papermill starts; jupyter maps 'python' in it to this interpreter

# Notebook parameters that are not RunConfig fields (test_notebooks accepts exactly these).
EXTRA_PARAMETERS = {
    "preset": "name of the base configuration: smoke | default | paper",
    "results_dir": "folder of the results store (runs/, tables/, notebooks/)",
    "figures_dir": "folder the report notebooks write figures to",
    "tables_dir": "folder the report notebooks write tables to (CSV and markdown)",
    "grid": "grid YAML whose runs a report notebook summarises",
    "study_grid": "grid YAML of the study whose loss the loss ablation judges",
    "n_examples": "how many test clips the qualitative notebook lists",
    "top_k": "how many top-scored tags are listed per clip",
    "listen_tags": "tags whose clips the tour plays and shows",
    "listen_clips": "how many clips the tour plays per tag",
}

# config fields whose allowed values are a registry's names: the experiment notebook lists them from the registry
REGISTRIES = {"model": MODEL_NAMES, "dataset": tuple(READERS)}
EXPERIMENT_DEFAULTS = {"preset": "default", "results_dir": "results"}  # the experiment notebook's extra parameters

_UNSET_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


# ---- grid files ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Grid:
    """A parsed grid file: where each point runs, from which preset, and the reports to draw."""

    path: Path
    notebook: Path
    preset: str
    overrides: dict[str, Any]
    points: tuple[dict[str, Any], ...]  # notebook parameters of each run, unique by run id
    reports: tuple[Report, ...]
    jobs: int = 1
    outputs: str = ""  # sub-folder of figures/ and results/tables/ for this grid's reports ('' = top level)
    slurm: dict[str, Any] = field(default_factory=dict)  # each point's job resources (study.slurm.SlurmResources)

    def base_config(self) -> RunConfig:
        """The preset with the grid's overrides: what every point shares."""
        return RunConfig.from_flat(self.preset, **self.overrides)

    def configs(self) -> list[RunConfig]:
        return [RunConfig.from_flat(self.preset, **point) for point in self.points]


def grid_for_preset(preset: str) -> Path:
    path = GRIDS_DIR / f"{preset}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in GRIDS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no grid file {path} for preset {preset!r} — use a preset with a grid: {', '.join(known)}")
    return path


def expand(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The cartesian product of one grid entry (a scalar counts as a one-value list)."""
    names = list(entry)
    values = [v if isinstance(v, list) else [v] for v in entry.values()]
    return [dict(zip(names, combination)) for combination in itertools.product(*values)]


def load_grid(path: str | Path, *, require_env: bool = True) -> Grid:
    """Parse and check a grid file: every name must be a config field the notebook accepts.

    ``require_env=False`` (report notebooks) replaces unset ``$VARIABLES`` with '' instead of
    failing, since the machine-specific fields they fill never decide which runs are reported.
    """
    path = resolve_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file {path} does not exist — give a grid such as grids/default.yaml")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - {"notebook", "preset", "jobs", "overrides", "grid", "reports", "outputs", "slurm"}
    if unknown or "grid" not in spec or "notebook" not in spec:
        raise ValueError(f"{path}: expected keys notebook, preset, grid (and optional jobs, overrides, reports, "
                         f"outputs, slurm); got {sorted(spec)}")
    preset = str(spec.get("preset", "default"))
    overrides = _expand_env(dict(spec.get("overrides") or {}), path, require_env)
    notebook = resolve_path(spec["notebook"])
    accepted = set(notebook_parameters(notebook))
    points: dict[str, dict[str, Any]] = {}
    for number, entry in enumerate(spec["grid"]):
        if not isinstance(entry, dict) or not entry:
            raise ValueError(f"{path}: grid entry {number} must be a mapping of name -> list of values, got {entry!r}")
        for point in expand(_expand_env(entry, path, require_env)):
            point = {**overrides, **point}
            refused = sorted(set(point) - accepted)
            if refused:
                raise ValueError(f"{path}: grid entry {number} sets {refused}, which {notebook} does not take as "
                                 f"parameters; it takes {sorted(accepted)}")
            try:
                run_id = RunConfig.from_flat(preset, **point).run_id
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}: grid entry {number}, point {point}: {error}") from None
            points.setdefault(run_id, point)
    reports = tuple(_report(item, path) for item in spec.get("reports") or [])
    return Grid(path=path, notebook=notebook, preset=preset, overrides=overrides, points=tuple(points.values()),
                reports=reports, jobs=int(spec.get("jobs", 1)), outputs=str(spec.get("outputs") or ""),
                slurm=dict(spec.get("slurm") or {}))


def _report(item: Any, grid_path: Path) -> Report:
    if isinstance(item, str):
        return Report(resolve_path(item))
    if isinstance(item, dict) and "notebook" in item and set(item) <= {"notebook", "parameters"}:
        return Report(resolve_path(item["notebook"]), dict(item.get("parameters") or {}))
    raise ValueError(f"{grid_path}: a report is a notebook path or {{notebook, parameters}}, got {item!r}")


def _expand_env(values: dict[str, Any], path: Path, require_env: bool) -> dict[str, Any]:
    def one(name: str, value: Any) -> Any:
        if isinstance(value, list):
            return [one(name, v) for v in value]
        if not isinstance(value, str) or "$" not in value:
            return value
        expanded = os.path.expandvars(value)
        missing = _UNSET_VARIABLE.findall(expanded)
        if missing and require_env:
            raise ValueError(f"{path}: {name} = {value!r} needs the environment variable(s) {missing}; "
                             f"export them (e.g. {missing[0]}=/path/to/data) and run again")
        return _UNSET_VARIABLE.sub("", expanded)

    return {name: one(name, value) for name, value in values.items()}


def notebook_parameters(notebook: str | Path) -> dict[str, Any]:
    """Names (and defaults) of a notebook's ``parameters`` cell, as papermill reads them."""
    import papermill

    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} does not exist")
    return {name: spec["default"] for name, spec in papermill.inspect_notebook(str(notebook)).items()}


def experiment_parameters_cell() -> str:
    """The parameters cell of notebooks/01_experiment.ipynb, derived from the config: the preset, the
    results folder and every RunConfig field, each None (the preset's value) with its comment from
    study/config.py.  ``tools/experiment_parameters.py`` writes it; a test keeps the two in step."""
    lines = [f"{name} = {value!r}  # {EXTRA_PARAMETERS[name]}".replace("'", '"')
             for name, value in EXPERIMENT_DEFAULTS.items()]
    for name, comment in field_comments().items():
        choices = f"; one of {' | '.join(REGISTRIES[name])}" if name in REGISTRIES else ""
        lines.append(f"{name} = None  # {comment}{choices}")
    return "\n".join(lines)


# ---- one configuration -----------------------------------------------------------------------
def run_configuration(cfg: RunConfig, *, results_dir: str | Path = "results") -> Path:
    """Train and evaluate one configuration, or fit Table 1's GBT baseline when the model is the registry's GBT."""
    if cfg.model.model == GBT:
        return run_gbt(cfg, results_dir=results_dir)
    return run_experiment(cfg, results_dir=results_dir)


def load_collections(configs: list[RunConfig]) -> dict[DataConfig, Collection]:
    """Each distinct collection of ``configs``, read once (label files only; no audio is decoded)."""
    collections: dict[DataConfig, Collection] = {}
    for cfg in configs:
        if cfg.data.whole() not in collections:
            collections[cfg.data.whole()] = load_collection(cfg.data.whole())
    return collections


def prepare_data(configs: list[RunConfig], *, collections: dict[DataConfig, Collection] | None = None) -> None:
    """Decode each distinct collection once before the runs start, so parallel runs share a cache
    instead of waiting on each other's build (and its progress bar shows here, not in a notebook)."""
    collections = collections or load_collections(configs)
    seen: set[tuple] = set()
    for cfg in configs:
        if (cfg.data.whole(), cfg.audio.sample_rate) in seen:
            continue
        seen.add((cfg.data.whole(), cfg.audio.sample_rate))
        ensure_cache(collections[cfg.data.whole()], cfg)


# ---- executing notebooks ---------------------------------------------------------------------
@dataclass(frozen=True)
class NotebookRun:
    output: Path
    attempts: int
    error: str | None = None
    seconds: float = 0.0


KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]  # the kernel's own log says nothing a user of the
# study can act on: its TCP transport warning at start-up, and "KeyboardInterrupt caught in kernel" when the
# SIGINT that jupyter_client sends every kernel it shuts down meets a message handler.  Errors in cells still
# come back as errors (through the messages), and a dead kernel as a failed run.


def execute_notebook(notebook: str | Path, output: str | Path, parameters: dict[str, Any], *,
                     retries: int = 0, cwd: str | Path | None = None, log_output: bool = False) -> NotebookRun:
    """Run one notebook with papermill, up to ``1 + retries`` times; the last error is returned, not raised.

    The executed copy replaces ``output`` only when it differs in more than timestamps and
    durations, so rerunning a finished study leaves the committed notebooks (and git) untouched.
    ``log_output`` streams the cells' output to the ``papermill`` logger as it comes.  An interrupted
    execution (KeyboardInterrupt) leaves ``output`` as it was and is raised.
    """
    import papermill

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    error = None
    for attempt in range(1, retries + 2):
        handle, executed = tempfile.mkstemp(prefix=f".{output.stem}-", suffix=".ipynb", dir=output.parent)
        os.close(handle)
        try:
            papermill.execute_notebook(str(notebook), executed, parameters=parameters, kernel_name=KERNEL,
                                       cwd=str(cwd or Path.cwd()), progress_bar=False, log_output=log_output,
                                       extra_arguments=KERNEL_ARGUMENTS)
            error = None
        except Exception as exc:  # a failed cell, a dead kernel: report it and retry
            error = _short_error(exc)
        except BaseException:  # interrupted: the run resumes from its checkpoint, its old notebook stays
            Path(executed).unlink(missing_ok=True)
            raise
        replace_if_changed(Path(executed), output)  # a failed run's notebook shows where it failed
        if error is None:
            return NotebookRun(output, attempt, None, time.monotonic() - start)
    return NotebookRun(output, retries + 1, error, time.monotonic() - start)


# What changes on every execution of an unchanged notebook: papermill's and Jupyter's clocks (and cell ids).
VOLATILE_PAPERMILL = ("start_time", "end_time", "duration")


def replace_if_changed(executed: Path, output: Path) -> bool:
    """Move the freshly ``executed`` notebook to ``output`` unless ``output`` holds the same notebook apart
    from its execution times; return whether ``output`` was written.  ``executed`` is gone afterwards."""
    import nbformat

    try:
        fresh = nbformat.read(executed, as_version=4)
    except Exception:  # papermill died before writing a notebook: nothing to keep
        executed.unlink(missing_ok=True)
        return False
    fresh.metadata.get("papermill", {})["output_path"] = str(output)  # papermill recorded the temporary name
    fresh = without_machine_paths(fresh)
    try:
        unchanged = _without_clocks(nbformat.read(output, as_version=4)) == _without_clocks(fresh)
    except (OSError, ValueError):  # no earlier copy, or not a notebook
        unchanged = False
    if unchanged:
        executed.unlink()
        return False
    nbformat.write(fresh, executed)
    os.replace(executed, output)
    return True


def without_machine_paths(notebook):
    """The notebook with this checkout's location cut from every path it prints or records (a figure's
    path, papermill's input and output, a warning's source file), so that an executed notebook is the
    same wherever the repository lies and publishes no machine's layout."""
    import nbformat

    root = str(REPOSITORY_ROOT.resolve()) + os.sep
    text = nbformat.writes(notebook)
    return nbformat.reads(text.replace(root, ""), as_version=4) if root in text else notebook


def _without_clocks(notebook) -> str:
    """The notebook as JSON without execution timestamps, durations and cell ids (papermill draws a new
    random id for the cell it injects the parameters in)."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        cell.pop("id", None)
    for metadata in [notebook.metadata, *(cell.metadata for cell in notebook.cells)]:
        metadata.pop("execution", None)  # Jupyter's per-cell timestamps
        for name in VOLATILE_PAPERMILL:
            metadata.get("papermill", {}).pop(name, None)
    return json.dumps(notebook, sort_keys=True)


def _short_error(exc: Exception) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(exc).__name__}: {exc}"
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__


def job_gpus(jobs: int, visible: str | None, gpu_count: int) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` of each of ``jobs`` parallel runs: one GPU each, taken in turn.

    ``visible`` is this process's own ``CUDA_VISIBLE_DEVICES`` (None when unset: GPUs 0 .. gpu_count - 1);
    with more jobs than GPUs, jobs share them round robin.  None for every job when there is no GPU.
    """
    gpus = [g.strip() for g in visible.split(",") if g.strip()] if visible is not None else [
        str(g) for g in range(gpu_count)]
    if not gpus or gpu_count < 1:
        return [None] * jobs
    return [gpus[job % len(gpus)] for job in range(jobs)]


def _visible_gpus(jobs: int) -> list[str | None]:
    import torch  # counting GPUs does not start CUDA in this process

    return job_gpus(jobs, os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count())


def point_log(results_dir: str | Path, cfg: RunConfig) -> Path:
    """Where a running point's output goes as it comes: ``<cache_dir>/logs/<run_id>.log`` (not committed)."""
    return resolve_path(cfg.data.cache_dir) / "logs" / f"{cfg.run_id}.log"


@dataclass
class BatchSummary:
    grid: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run id or report -> error
    reports: list[Path] = field(default_factory=list)  # executed report notebooks
    interrupted: dict[str, int] = field(default_factory=dict)  # run id -> the epoch its checkpoint holds
    left: list[str] = field(default_factory=list)  # not started: outside the time budget, or after a stop
    held: dict[str, str] = field(default_factory=dict)  # not started: run id -> the other worker running it
    stopped_by: int | None = None  # the signal that stopped the batch

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped_by is None

    @property
    def exit_status(self) -> int:
        """0, 1 when something failed, or 128 + the signal that stopped the batch (130 Ctrl-C, 143 SIGTERM)."""
        if self.stopped_by is not None:
            return 128 + int(self.stopped_by)
        return 0 if self.ok else 1

    def __str__(self) -> str:
        lines = [f"{self.grid}: done {len(self.done)}, skipped {len(self.skipped)} (already complete), "
                 f"failed {len(self.failed)}" + (f", interrupted {len(self.interrupted)}" if self.interrupted else "")
                 + (f", left for later {len(self.left)}" if self.left else "")
                 + (f", left to other workers {len(self.held)}" if self.held else "")]
        lines += [f"  FAILED {name}: {error}" for name, error in self.failed.items()]
        lines += [f"  interrupted {run_id}: resumes after epoch {epoch}" if epoch else
                  f"  interrupted {run_id}: before its first epoch ended, starts again" for run_id, epoch in
                  self.interrupted.items()]
        lines += [f"  left for later {run_id}" for run_id in self.left]
        lines += [f"  left to another worker {run_id}: run by {holder}" for run_id, holder in self.held.items()]
        lines += [f"  report {path}" for path in self.reports]
        return "\n".join(lines)


def run_batch(grid: str | Path | Grid, *, results_dir: str | Path = "results", figures_dir: str | Path = "figures",
              jobs: int | None = None, retries: int = 1, report: bool = True, deadline: float | None = None,
              stream=None, executor: str = "local", slurm: dict[str, Any] | None = None) -> BatchSummary:
    """Run every point of a grid that is not complete yet, then its report notebooks.

    ``deadline`` (a ``time.time()``) starts a point only when its estimate fits before it
    (``--time-budget``); what does not fit is listed as left for later, and the reports still run.
    ``executor="slurm"`` submits each point as a SLURM job (study.slurm) with the grid's ``slurm:``
    resources updated by ``slurm``; every point is submitted at once unless ``jobs`` caps it.
    A point whose lock another worker holds (study.locks) is left to it.
    """
    from study.locks import held_by
    from study.progress import GridDisplay, duration
    from study.scheduler import LocalExecutor, Point, run_points

    grid = grid if isinstance(grid, Grid) else load_grid(grid)
    cluster = _slurm_executor(grid, slurm) if executor == "slurm" else None
    jobs = max(1, jobs or (len(grid.points) if cluster else grid.jobs))
    summary = BatchSummary(grid.path)
    out = stream or sys.stdout
    notebooks_dir = resolve_path(results_dir) / "notebooks"
    configs = grid.configs()
    collections = load_collections(configs)
    todo = []
    for point, cfg in zip(grid.points, configs):
        manifest_hash = collections[cfg.data.whole()].manifest_hash()
        if reusable_run(results_dir, cfg.run_id, manifest_hash, announce=False) is not None:
            summary.skipped.append(cfg.run_id)
            continue
        parameters = {**point, "preset": grid.preset, "results_dir": portable_path(results_dir)}
        todo.append((cfg, parameters))
    print(f"{grid.path}: {len(grid.points)} points, {len(summary.skipped)} already complete for these data, "
          f"{len(todo)} to run ({jobs} at a time)", file=out, flush=True)
    if not todo:
        if report:
            run_reports(grid, results_dir=results_dir, figures_dir=figures_dir, summary=summary, stream=out)
        print(summary, file=out, flush=True)
        return summary
    table, wall = estimate([cfg for cfg, _ in todo], collections, results_dir=results_dir, jobs=jobs)
    seconds = {row.run_id: _seconds_left(row, cfg) for row, (cfg, _) in zip(table.itertuples(), todo)}
    wall = wall_seconds(list(seconds.values()), jobs)
    print(f"estimate: about {duration(wall)} with {jobs} run(s) at a time on this machine "
          f"({', '.join(_estimate_basis(table))}); `study batch {portable_path(grid.path)} --dry-run` lists every "
          f"point", file=out, flush=True)
    if deadline is not None:
        print(f"time budget: until {time.strftime('%H:%M', time.localtime(deadline))} "
              f"({duration(deadline - time.time())}); a point starts only if its estimate fits", file=out, flush=True)
    print("stop with Ctrl-C (or SIGTERM): finished runs are kept, running ones keep their last finished epoch, "
          "and the same command resumes them", file=out, flush=True)
    prepare_data([cfg for cfg, _ in todo], collections=collections)
    points = [Point(run_id=cfg.run_id, model=cfg.model.model, notebook=str(grid.notebook),
                    output=str(notebooks_dir / f"{cfg.run_id}.ipynb"), parameters=parameters,
                    log=point_log(results_dir, cfg), estimate_seconds=float(seconds[cfg.run_id]), retries=retries,
                    cwd=str(Path.cwd()),
                    progress_dir=None if cfg.model.model == GBT else _checkpoint_dir(cfg))
              for cfg, parameters in todo]
    display = GridDisplay(total=len(points), stream=out)
    runner = cluster or LocalExecutor(threads=job_threads(jobs), gpus=_visible_gpus(jobs))
    by_id = {cfg.run_id: cfg for cfg, _ in todo}

    def reestimate(point: Point) -> float:  # the runs finished since the batch started count too
        cfg = by_id[point.run_id]
        row = next(estimate([cfg], collections, results_dir=results_dir, jobs=jobs)[0].itertuples())
        return _seconds_left(row, cfg)

    try:
        outcomes, stopped_by = run_points(points, jobs=jobs, executor=runner, display=display, deadline=deadline,
                                          reestimate=reestimate, held=lambda p: held_by(results_dir, p.run_id))
    finally:
        display.close()
    for outcome in outcomes:
        run_id = outcome.point.run_id
        if outcome.status == "done":
            summary.done.append(run_id)
        elif outcome.status == "failed":
            summary.failed[run_id] = f"{outcome.error} (see {outcome.point.output} and {outcome.point.log})"
        elif outcome.status == "interrupted":
            summary.interrupted[run_id] = outcome.epoch
        elif outcome.status == "held":
            summary.held[run_id] = outcome.error or "another worker"
        else:
            summary.left.append(run_id)
    summary.stopped_by = stopped_by
    if report and stopped_by is None:
        run_reports(grid, results_dir=results_dir, figures_dir=figures_dir, summary=summary, stream=out)
    print(summary, file=out, flush=True)
    if stopped_by is not None or summary.left:
        print(f"to go on: study batch {portable_path(grid.path)}" + (" (the same options)" if deadline else ""),
              file=out, flush=True)
    return summary


def _slurm_executor(grid: Grid, options: dict[str, Any] | None):
    """The grid's SLURM executor, after checking that a controller answers (a clear error otherwise)."""
    from study.errors import UserError
    from study.slurm import SlurmExecutor, SlurmResources, slurm_available

    problem = slurm_available()
    if problem:
        raise UserError(f"--executor slurm: {problem}")
    resources = SlurmResources().with_overrides(**grid.slurm).with_overrides(**(options or {}))
    return SlurmExecutor(folder=_slurm_folder(grid), resources=resources)


def _slurm_folder(grid: Grid) -> Path:
    """Where submitit keeps each job's files: beside the audio cache (shared by the cluster's nodes)."""
    return resolve_path(grid.base_config().data.cache_dir) / "slurm"


def _seconds_left(row, cfg: RunConfig) -> float:
    """A point's estimate less the epochs its checkpoint already holds (an interrupted run resumes after them)."""
    from study.train import read_progress

    if cfg.model.model == GBT or pd.isna(row.epoch_seconds):
        return float(row.seconds)
    done = (read_progress(_checkpoint_dir(cfg)) or {}).get("epoch", 0)
    return float(row.seconds) - min(float(done), float(row.epochs) - 1) * float(row.epoch_seconds)


def _estimate_basis(table: pd.DataFrame) -> list[str]:
    """One phrase per model: its minutes per run and what the estimate rests on."""
    from study.progress import duration

    phrases = []
    for model, rows in table.groupby("model", sort=False):
        timing = rows["basis"].iloc[0].split("epoch time: ")[-1]
        phrases.append(f"{model} {duration(rows['seconds'].median())} per run, epoch times from {timing}"
                       if model != GBT else f"{model} {duration(rows['seconds'].median())}")
    return phrases


def _checkpoint_dir(cfg: RunConfig) -> Path:
    from study.experiment import checkpoint_dir

    return checkpoint_dir(cfg)


def run_reports(grid: str | Path | Grid, *, results_dir: str | Path = "results", figures_dir: str | Path = "figures",
                summary: BatchSummary | None = None, stream=None) -> BatchSummary:
    """Execute a grid's report notebooks: tables go to ``<results_dir>/tables/<outputs>``, figures to
    ``<figures_dir>/<outputs>``, where ``outputs`` is the grid's (so the smoke study never overwrites the
    default study's figures)."""
    grid = grid if isinstance(grid, Grid) else load_grid(grid, require_env=False)
    summary = summary or BatchSummary(grid.path)
    for item in grid.reports:
        given = {"grid": portable_path(grid.path), "preset": grid.preset, "results_dir": portable_path(results_dir),
                 "tables_dir": portable_path(Path(results_dir) / "tables" / grid.outputs),
                 "figures_dir": portable_path(Path(figures_dir) / grid.outputs), **item.parameters}
        accepted = notebook_parameters(item.notebook)
        parameters = {name: value for name, value in given.items() if name in accepted}
        label = Path(str(parameters.get("grid", grid.path))).stem
        output = resolve_path(results_dir) / "notebooks" / f"{item.notebook.stem}-{label}.ipynb"
        result = execute_notebook(item.notebook, output, parameters)
        if result.error is None:
            summary.reports.append(output)
        else:
            summary.failed[str(item.notebook)] = f"{result.error} (see {output})"
        print(f"report {item.notebook.name}: {'ok' if result.error is None else 'FAILED'} "
              f"({result.seconds:.0f} s) -> {output}", file=stream or sys.stdout, flush=True)
    return summary


# ---- command line ----------------------------------------------------------------------------
def register_cli(subparsers: argparse._SubParsersAction) -> None:
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--results-dir", default="results", help="results store (default: results)")
        parser.add_argument("--figures-dir", default="figures", help="where figures go (default: figures)")

    def running(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--jobs", type=int, default=None,
                            help="runs in parallel (default: the grid's jobs, else 1)")
        parser.add_argument("--retries", type=int, default=1, help="extra attempts for a failed run (default: 1)")
        limit = parser.add_mutually_exclusive_group()
        limit.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                           help="start a point only if its estimate fits in this many minutes from now; the rest "
                                "is left for a later batch (for a scheduler's time limit)")
        limit.add_argument("--deadline", default=None, metavar="TIME",
                           help="as --time-budget, up to a clock time: HH:MM (today, or tomorrow if past) or ISO 8601")
        cluster = parser.add_argument_group("cluster", "--executor slurm: one SLURM job per point, through submitit; "
                                            "these override the grid file's slurm: resources")
        cluster.add_argument("--executor", choices=("local", "slurm"), default="local",
                             help="local processes (default) or SLURM jobs")
        cluster.add_argument("--partition", default=None, help="SLURM partition")
        cluster.add_argument("--time-limit", type=int, default=None, dest="time_min", metavar="MINUTES",
                             help="each job's time limit; a run still going is requeued and resumes (default 240)")
        cluster.add_argument("--cpus", type=int, default=None, help="CPUs per job (default 2)")
        cluster.add_argument("--gpus", type=int, default=None, help="GPUs per job (default 0)")
        cluster.add_argument("--mem-gb", type=float, default=None, help="memory per job in GB (default 8)")
        cluster.add_argument("--account", default=None, help="SLURM account to charge")
        common(parser)

    def deadline(args) -> float | None:
        return parse_deadline(time_budget=args.time_budget, deadline=args.deadline)

    def cluster(args) -> dict[str, Any]:
        return {"executor": args.executor, "slurm": {name: getattr(args, name) for name in
                                                    ("partition", "time_min", "cpus", "gpus", "mem_gb", "account")}}

    batch = subparsers.add_parser("batch", help="run a grid of configurations through the experiment notebook")
    batch.add_argument("grid", help="grid YAML, e.g. grids/default.yaml")
    batch.add_argument("--no-report", action="store_true", help="skip the report notebooks")
    batch.add_argument("--dry-run", action="store_true",
                       help="run nothing: print each point, whether it is stored, and the estimated wall time here")
    running(batch)
    batch.set_defaults(func=lambda args: dry_run(args.grid, results_dir=args.results_dir, jobs=args.jobs,
                                                 **cluster(args))
                       if args.dry_run else _exit(run_batch(args.grid, results_dir=args.results_dir,
                                                            figures_dir=args.figures_dir, jobs=args.jobs,
                                                            retries=args.retries, report=not args.no_report,
                                                            deadline=deadline(args), **cluster(args))))

    report = subparsers.add_parser("report", help="regenerate tables and figures from the runs in the results store")
    report.add_argument("grid", nargs="?", help="grid YAML whose reports to run (default: grids/<preset>.yaml)")
    report.add_argument("--preset", default="default", help="smoke | default | paper (default: default)")
    common(report)
    report.set_defaults(func=lambda args: _exit(run_reports(args.grid or grid_for_preset(args.preset),
                                                            results_dir=args.results_dir,
                                                            figures_dir=args.figures_dir), echo=True))

    run = subparsers.add_parser("run", help="the main job: a preset's whole study (its grid, then its reports)")
    run.add_argument("--preset", default="default", help="smoke | default | paper (default: default)")
    running(run)
    run.set_defaults(func=lambda args: _exit(run_batch(grid_for_preset(args.preset), results_dir=args.results_dir,
                                                       figures_dir=args.figures_dir, jobs=args.jobs,
                                                       retries=args.retries, deadline=deadline(args),
                                                       **cluster(args))))


def parse_deadline(*, time_budget: float | None = None, deadline: str | None = None,
                   now: float | None = None) -> float | None:
    """The ``time.time()`` a batch must be done by: ``time_budget`` minutes from ``now``, or a clock time."""
    import datetime as dt

    from study.errors import UserError

    now = time.time() if now is None else now
    if time_budget is not None:
        if time_budget <= 0:
            raise UserError(f"--time-budget {time_budget:g}: give a positive number of minutes")
        return now + 60.0 * time_budget
    if deadline is None:
        return None
    text = deadline.strip()
    try:
        if len(text) <= 5 and ":" in text:
            hours, minutes = (int(part) for part in text.split(":"))
            moment = dt.datetime.fromtimestamp(now).replace(hour=hours, minute=minutes, second=0, microsecond=0)
            if moment.timestamp() <= now:
                moment += dt.timedelta(days=1)
            return moment.timestamp()
        moment = dt.datetime.fromisoformat(text)
        return moment.timestamp()
    except ValueError:
        raise UserError(f"--deadline {deadline!r}: expected HH:MM or an ISO 8601 time such as 2026-12-07T18:30") from None


def dry_run(grid: str | Path | Grid, *, results_dir: str | Path = "results", jobs: int | None = None,
            executor: str = "local", slurm: dict[str, Any] | None = None) -> int:
    """Print the grid's points, which are stored, and the wall time the rest would take on this machine.

    The estimate (study.estimate) measures each model's throughput here, one thread per job, and
    reads how many epochs runs like these needed from the stored runs.  With ``executor="slurm"``
    it also prints the job each point to run would be submitted as (nothing is submitted).
    """
    grid = grid if isinstance(grid, Grid) else load_grid(grid, require_env=False)
    jobs = max(1, jobs or grid.jobs)
    configs = grid.configs()
    collections = load_collections(configs)
    todo = {cfg.run_id for cfg in configs
            if reusable_run(results_dir, cfg.run_id, collections[cfg.data.whole()].manifest_hash(),
                            announce=False) is None}
    table, wall = estimate(configs, collections, results_dir=results_dir, todo=todo, jobs=jobs)
    table.insert(1, "stored", ~table["run_id"].isin(todo))
    shown = table.assign(minutes=(table["seconds"] / 60).round(1), epoch_seconds=table["epoch_seconds"].round(1))
    with pd.option_context("display.width", 250, "display.max_colwidth", 90, "display.max_rows", 500):
        print(shown.drop(columns="seconds").to_string(index=False))
    print(f"{grid.path.name}: {len(configs)} points, {len(configs) - len(todo)} stored, {len(todo)} to run; "
          f"about {wall / 60:.0f} min with {jobs} job(s) in parallel on this machine "
          f"({os.cpu_count()} CPUs), plus the report notebooks")
    if executor == "slurm":
        from study.slurm import SlurmResources, sbatch_line

        resources = SlurmResources().with_overrides(**grid.slurm).with_overrides(**(slurm or {}))
        print(f"--executor slurm would submit {len(todo)} job(s) through submitit (job files in "
              f"{portable_path(_slurm_folder(grid))}), then run the reports here once they are stored:")
        for cfg in configs:
            if cfg.run_id in todo:
                print(f"  {sbatch_line(resources, cfg.run_id)}")
    return 0


def _exit(summary: BatchSummary, *, echo: bool = False) -> int:
    if echo:
        print(summary)
    return summary.exit_status


__all__ = [
    "BatchSummary", "EXTRA_PARAMETERS", "Grid", "NotebookRun", "Report", "config_from_parameters",
    "execute_notebook", "expand", "experiment_parameters_cell", "grid_for_preset", "load_grid", "notebook_parameters",
    "prepare_data", "register_cli", "run_batch", "run_configuration", "run_reports",
]
