"""How long a grid will take on this machine, before anything runs (``study batch --dry-run``, ``--time-budget``).

A network run's minutes are (epochs it will need) x (seconds per epoch) + its start and test.
How many epochs a run needs cannot be known before it stops early, so it is read from the stored
runs of the same model, training-set size and schedule (the median of their recorded epochs),
otherwise from a line through the two nearest stored sizes on a log scale of clips (one stored size:
its median), and otherwise bounded by the epoch cap.
The seconds per epoch are measured, not modelled: the median epoch time of the latest stored runs
of the same front-end trained as this machine will train it (same number of CPUs and torch threads
per run, i.e. the same jobs setting, and the same kind of device), so that the estimate follows the
code the runs were trained with.  Only where no such run is stored is the epoch timed here and now
with a few training steps and evaluation batches of the model (one thread per job); that probe
leaves out what a real epoch spends outside the steps, and the table says which basis each row has.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from study.config import RunConfig
from study.data.collection import Collection
from study.data.patches import eval_windows, patch_length
from study.models import GBT, build_model
from study.results import complete_runs, read_json

GBT_SECONDS_PER_CLIP = 0.05  # descriptors of a 6 s clip on one core (librosa), measured by benchmarks/bench_cache.py


def throughput(cfg: RunConfig, n_tags: int, *, steps: int = 3, threads: int = 1) -> dict[str, float]:
    """Training patches per second (forward, backward, Adam) and evaluation windows per second of ``cfg``'s model."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = build_model(cfg.model, n_tags=n_tags, audio_cfg=cfg.audio)
        samples = patch_length(model, cfg.train.patch_seconds, cfg.audio.sample_rate)
        batch = cfg.train.batch_size
        audio = 0.1 * torch.randn(batch, samples, generator=torch.Generator().manual_seed(0))
        labels = (torch.rand(batch, n_tags, generator=torch.Generator().manual_seed(1)) < 0.1).float()
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.learning_rate)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.binary_cross_entropy_with_logits(model(audio), labels).backward()
            optimizer.step()

        step()  # warm-up
        started = time.perf_counter()
        for _ in range(steps):
            step()
        train = steps * batch / (time.perf_counter() - started)
        model.eval()
        with torch.inference_mode():
            model(audio)
            started = time.perf_counter()
            for _ in range(steps):
                model(audio)
            predict = steps * batch / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    return {"train_patches_per_s": train, "windows_per_s": predict}


LATEST_RUNS = 3  # stored runs whose epoch times a new run's are read from: the newest, so newer code counts
START_SECONDS = 30.0  # a point's kernel start, imports and compilation of the loops, before its first epoch


def _stored_epochs(results_dir: str | Path) -> pd.DataFrame:
    """(model, train_size, schedule, epochs, epoch_seconds, test_seconds, threads, cpus, device, created)
    of every stored network run."""
    rows = []
    for run_dir in complete_runs(results_dir):
        try:
            config = RunConfig.from_dict(read_json(run_dir, "config.json"))
            training = read_json(run_dir, "protocol.json").get("training") or {}
            origin = read_json(run_dir, "provenance.json")
        except (ValueError, TypeError, KeyError, OSError):
            continue  # another schema, or not a network run
        if not training.get("epochs") or "train" not in (origin.get("timings") or {}):
            continue  # not a network run, or a trained checkpoint scored again (study evaluate): no epochs of its own
        try:
            seconds = pd.read_csv(run_dir / "curve.csv")["seconds"].dropna()
        except (OSError, KeyError, ValueError):
            seconds = pd.Series(dtype=float)
        hardware = origin.get("hardware") or {}
        timings = origin.get("timings") or {}
        rows.append({"model": config.model.model, "train_size": config.data.train_size, "schedule": _schedule(config),
                     "loss": config.train.loss,
                     "epoch_shape": _epoch_shape(config), "epochs": int(training["epochs"]),
                     "epoch_seconds": float(seconds.median()) if len(seconds) else np.nan,
                     "test_seconds": float(timings.get("test", np.nan)), "threads": hardware.get("torch_threads"),
                     "cpus": hardware.get("cpu_count"), "device": "cuda" if hardware.get("cuda") else "cpu",
                     "created": str(origin.get("created", ""))})
    return pd.DataFrame(rows, columns=["model", "train_size", "schedule", "loss", "epoch_shape", "epochs", "epoch_seconds", "test_seconds",
                                       "threads", "cpus", "device", "created"])


def job_threads(jobs: int, cpus: int | None = None) -> int:
    """Torch threads of each of ``jobs`` runs sharing this machine's CPUs, as ``study batch`` starts them."""
    return max(1, (cpus or os.cpu_count() or 1) // max(jobs, 1))


def measured_epoch(cfg: RunConfig, stored: pd.DataFrame, *, threads: int, cpus: int | None = None,
                   device: str = "cpu") -> tuple[float, float, str] | None:
    """(seconds per epoch, test seconds, basis) from the latest stored runs whose epochs cost what ``cfg``'s do
    (:func:`_epoch_shape`) trained with ``threads`` torch threads on a machine of ``cpus`` CPUs; None where there is none."""
    cpus = cpus or os.cpu_count()
    shape = _epoch_shape(cfg)
    same = stored[(stored["threads"] == threads) & (stored["cpus"] == cpus) & (stored["device"] == device)
                  & stored["epoch_seconds"].notna() & stored["epoch_shape"].map(lambda s: s == shape)]
    if not len(same):
        return None
    latest = same.sort_values("created").tail(LATEST_RUNS)
    test = latest["test_seconds"].median()
    return (float(latest["epoch_seconds"].median()), 0.0 if np.isnan(test) else float(test),
            f"{len(latest)} latest run(s) at {threads} thread(s)")


def _schedule(cfg: RunConfig) -> tuple:
    """What decides how long a run trains, besides its model, size and loss."""
    t = cfg.train
    return (t.epoch_patches, t.patience, t.lr_patience, t.learning_rate, t.batch_size, cfg.data.corpus_size)


def _epoch_shape(cfg: RunConfig) -> tuple:
    """What one epoch costs besides the machine: the network, its input, the patches trained and the clips validated."""
    t, e, d = cfg.train, cfg.eval, cfg.data
    return (cfg.model, cfg.audio, t.epoch_patches, t.batch_size, t.patch_seconds, e.eval_patch_seconds,
            e.eval_hop_seconds, e.whole_clip, d.dataset, d.corpus_size, d.clip_seconds, d.corpus_seed)


def expected_epochs(cfg: RunConfig, stored: pd.DataFrame) -> tuple[float, str]:
    """(epochs, basis): the median of stored runs like this one; else a line through the medians of the two
    nearest stored sizes, on a log scale of clips (more data, more epochs before validation stops
    improving), capped by the epoch cap; else the one stored size; else runs of the same size that differ
    only in their loss; else the cap."""
    scheduled = stored[(stored["model"] == cfg.model.model)
                       & stored["schedule"].map(lambda s: s == _schedule(cfg)).astype(bool)]
    same = scheduled[scheduled["loss"] == cfg.train.loss]
    exact = same[same["train_size"] == cfg.data.train_size]
    if len(exact):
        return float(exact["epochs"].median()), f"median of {len(exact)} stored run(s)"
    if not len(same):
        # another loss on the same schedule trains about as long (the loss ablation's runs: 47-74 epochs
        # against 45-64 for the loss they were compared with); any other difference in the schedule says nothing
        other_loss = scheduled[scheduled["train_size"] == cfg.data.train_size]
        if len(other_loss):
            return (float(other_loss["epochs"].median()),
                    f"median of {len(other_loss)} stored run(s) with another loss")
        return float(cfg.train.max_epochs), "epoch cap (no stored run to go by: an upper bound)"
    medians = same.groupby("train_size")["epochs"].median()
    where = np.log10(max(cfg.data.train_size, 1))
    nearest = sorted(medians.index, key=lambda size: abs(np.log10(max(size, 1)) - where))[:2]
    if len(nearest) == 1:
        return float(medians[nearest[0]]), f"stored runs at {nearest[0]:,} clips"
    (a, b) = sorted(nearest)
    slope = (medians[b] - medians[a]) / (np.log10(b) - np.log10(a))
    epochs = float(np.clip(medians[a] + slope * (where - np.log10(a)), 1, cfg.train.max_epochs))
    how = "interpolated" if a < cfg.data.train_size < b else "extrapolated"
    return epochs, f"{how} from stored runs at {a:,} and {b:,} clips"


def estimate(configs: list[RunConfig], collections: dict[Any, Collection], *, results_dir: str | Path = "results",
             todo: set[str] | None = None, jobs: int = 1, device: str = "cpu",
             probe: bool = True) -> tuple[pd.DataFrame, float]:
    """One row per configuration with its expected seconds, and the grid's wall time with ``jobs`` in parallel.

    ``collections`` maps each configuration's shared data (train_size 0) to its collection, for the
    split sizes; ``todo`` restricts the wall time to the runs not yet complete (default: all).
    ``probe=False`` times nothing here: a configuration without a stored epoch time gets NaN seconds.
    """
    stored = _stored_epochs(results_dir)
    threads = job_threads(jobs)
    speeds: dict[tuple, dict[str, float]] = {}
    rows = []
    for cfg in configs:
        collection = collections[cfg.data.whole()]
        counts = collection.counts()
        train_size = cfg.data.train_size or counts["train"]
        if cfg.model.model == GBT:
            clips = train_size + counts["valid"] + counts["test"]
            seconds = START_SECONDS + clips * GBT_SECONDS_PER_CLIP + 60.0 * train_size / 1000
            rows.append({"run_id": cfg.run_id, "model": GBT, "train_size": train_size, "epochs": np.nan,
                         "epoch_seconds": np.nan, "basis": f"descriptors of {clips:,} clips, then one tree model per tag",
                         "seconds": seconds})
            continue
        epochs, basis = expected_epochs(cfg, stored)
        measured = measured_epoch(cfg, stored, threads=threads, device=device)
        if measured is not None:
            per_epoch, test, timing = measured
        elif not probe:
            per_epoch, test, timing = np.nan, np.nan, "no stored run at these threads to time an epoch by"
        else:
            key = (cfg.model, cfg.audio, cfg.train.patch_seconds, cfg.train.batch_size)
            if key not in speeds:
                speeds[key] = throughput(cfg, len(collection.tags), threads=threads)
            per_epoch, test = _probed_epoch(cfg, collection, speeds[key])
            timing = "timed here (training steps and evaluation only)"
        rows.append({"run_id": cfg.run_id, "model": cfg.model.model, "train_size": train_size, "epochs": epochs,
                     "epoch_seconds": per_epoch, "basis": f"epochs: {basis}; epoch time: {timing}",
                     "seconds": START_SECONDS + epochs * per_epoch + test})
    table = pd.DataFrame(rows, columns=["run_id", "model", "train_size", "epochs", "epoch_seconds", "basis", "seconds"])
    pending = table if todo is None else table[table["run_id"].isin(todo)]
    return table, wall_seconds(pending["seconds"].tolist(), jobs)


def _probed_epoch(cfg: RunConfig, collection: Collection, speed: dict[str, float]) -> tuple[float, float]:
    """(seconds per epoch, test seconds) from the probe's throughput: training patches plus validation windows."""
    counts = collection.counts()
    per_epoch = cfg.train.epoch_patches or (cfg.data.train_size or counts["train"])
    model = build_model(cfg.model, n_tags=len(collection.tags), audio_cfg=cfg.audio)
    windows = eval_windows(cfg, model)
    clip_samples = (cfg.data.clip_seconds if cfg.data.dataset == "corpus" else 30) * cfg.audio.sample_rate
    per_clip = 1 if windows["whole_clip"] else max(1, int((clip_samples - windows["patch_samples"]) //
                                                          windows["hop_samples"]) + 1)
    return (per_epoch / speed["train_patches_per_s"] + counts["valid"] * per_clip / speed["windows_per_s"],
            counts["test"] * per_clip / speed["windows_per_s"])


def wall_seconds(seconds: list[float], jobs: int) -> float:
    """Wall time of runs of these durations on ``jobs`` slots, each run started as a slot frees (longest first)."""
    slots = [0.0] * max(jobs, 1)
    for duration in sorted(seconds, reverse=True):
        slots[slots.index(min(slots))] += duration
    return max(slots)


__all__ = ["estimate", "expected_epochs", "job_threads", "measured_epoch", "throughput", "wall_seconds"]
