"""How long a grid will take on this machine, before anything runs (``study batch --dry-run``).

Training time is patches / measured throughput.  The throughput is measured here and now, as the
batch jobs will run (one thread per job when several share the cores): a few training steps of
each model on random patches, and a few batches of evaluation windows.  How many patches a run
needs cannot be known before it stops early, so it is read from the stored runs of the same model,
training-set size and schedule where they exist (their recorded epochs), otherwise from the nearest
stored size of the same model, and otherwise bounded by the epoch cap; the table says which.
"""
from __future__ import annotations

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


def _stored_epochs(results_dir: str | Path) -> pd.DataFrame:
    """(model, train_size, schedule, epochs) of every stored network run."""
    rows = []
    for run_dir in complete_runs(results_dir):
        try:
            config = RunConfig.from_dict(read_json(run_dir, "config.json"))
            training = read_json(run_dir, "protocol.json").get("training") or {}
        except (ValueError, TypeError, KeyError, OSError):
            continue  # another schema, or not a network run
        if training.get("epochs"):
            rows.append({"model": config.model.model, "train_size": config.data.train_size,
                         "schedule": _schedule(config), "epochs": int(training["epochs"])})
    return pd.DataFrame(rows, columns=["model", "train_size", "schedule", "epochs"])


def _schedule(cfg: RunConfig) -> tuple:
    """What decides how long a run trains, besides its model and size."""
    t = cfg.train
    return (t.epoch_patches, t.patience, t.lr_patience, t.learning_rate, t.batch_size, t.loss, cfg.data.corpus_size)


def expected_epochs(cfg: RunConfig, stored: pd.DataFrame) -> tuple[float, str]:
    """(epochs, basis): the median of stored runs like this one, the nearest stored size, or the cap."""
    same = stored[(stored["model"] == cfg.model.model) & (stored["schedule"].map(lambda s: s == _schedule(cfg)))]
    exact = same[same["train_size"] == cfg.data.train_size]
    if len(exact):
        return float(exact["epochs"].median()), f"median of {len(exact)} stored run(s)"
    if len(same):
        nearest = same.iloc[(np.log10(same["train_size"].clip(lower=1)) - np.log10(max(cfg.data.train_size, 1))).abs()
                            .argsort()[:1]]["train_size"].item()
        epochs = same.loc[same["train_size"] == nearest, "epochs"].median()
        return float(epochs), f"stored runs at {nearest:,} clips"
    return float(cfg.train.max_epochs), "epoch cap (no stored run to go by: an upper bound)"


def estimate(configs: list[RunConfig], collections: dict[Any, Collection], *, results_dir: str | Path = "results",
             todo: set[str] | None = None, jobs: int = 1) -> tuple[pd.DataFrame, float]:
    """One row per configuration with its expected seconds, and the grid's wall time with ``jobs`` in parallel.

    ``collections`` maps each configuration's shared data (train_size 0) to its collection, for the
    split sizes; ``todo`` restricts the wall time to the runs not yet complete (default: all).
    """
    stored = _stored_epochs(results_dir)
    speeds: dict[tuple, dict[str, float]] = {}
    rows = []
    for cfg in configs:
        collection = collections[cfg.data.whole()]
        counts = collection.counts()
        train_size = cfg.data.train_size or counts["train"]
        if cfg.model.model == GBT:
            clips = train_size + counts["valid"] + counts["test"]
            seconds = clips * GBT_SECONDS_PER_CLIP + 60.0 * train_size / 1000
            rows.append({"run_id": cfg.run_id, "model": GBT, "train_size": train_size, "patches": np.nan,
                         "basis": f"descriptors of {clips:,} clips, then one tree model per tag", "seconds": seconds})
            continue
        key = (cfg.model, cfg.audio, cfg.train.patch_seconds, cfg.train.batch_size)
        if key not in speeds:
            speeds[key] = throughput(cfg, len(collection.tags))
        speed = speeds[key]
        epochs, basis = expected_epochs(cfg, stored)
        per_epoch = cfg.train.epoch_patches or train_size
        model = build_model(cfg.model, n_tags=len(collection.tags), audio_cfg=cfg.audio)
        windows = eval_windows(cfg, model)
        clip_samples = cfg.data.clip_seconds * cfg.audio.sample_rate if cfg.data.dataset == "corpus" else 30 * cfg.audio.sample_rate
        per_clip = 1 if windows["whole_clip"] else max(1, int((clip_samples - windows["patch_samples"]) //
                                                              windows["hop_samples"]) + 1)
        seconds = (epochs * per_epoch / speed["train_patches_per_s"]
                   + (epochs * counts["valid"] + counts["test"]) * per_clip / speed["windows_per_s"])
        rows.append({"run_id": cfg.run_id, "model": cfg.model.model, "train_size": train_size,
                     "patches": epochs * per_epoch, "basis": basis, "seconds": seconds})
    table = pd.DataFrame(rows, columns=["run_id", "model", "train_size", "patches", "basis", "seconds"])
    pending = table if todo is None else table[table["run_id"].isin(todo)]
    return table, float(pending["seconds"].sum()) / max(jobs, 1)


__all__ = ["estimate", "expected_epochs", "throughput"]
