"""One experiment end to end: data, cache, model, training, song-level test, results folder.

``run_experiment(cfg)`` is what notebooks, ``study train`` and batch grids call; it resumes an
interrupted run from its checkpoints and skips a run whose results are already complete for the
same data.  ``study evaluate`` re-scores a trained checkpoint under another evaluation protocol
(e.g. the whole clip in one pass instead of averaged 15 s windows, the question §4 leaves open)
and saves that as a run of its own.  Everything that can be checked without audio (the model
name, the tags, the window lengths, the splits) is checked before the audio is decoded.  Under
``torchrun`` every process calls the same function: the audio cache is ready before the
processes join their group, every rank trains and validates on its share, and rank 0 tests
and writes.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from study import data, models, pretrained
from study.checkpoint import BEST, LAST, load_checkpoint, load_tagger, save_checkpoint
from study.config import EXECUTION_FIELDS, EvalConfig, RunConfig, add_run_arguments, config_from_args
from study.data.cache import ensure_cache, wait_for_cache
from study.data.collection import Collection
from study.data.patches import RandomPatches, eval_windows, patch_length
from study.device import (DistInfo, amp_enabled, barrier, launch_info, resolve_device, seed_everything,
                          setup_distributed, teardown_distributed)
from study.errors import UserError
from study.evaluate import SongSet, predict_clips, protocol
from study.locks import run_lock
from study.paths import portable_path, resolve_path
from study.results import record_run, reusable_run, run_path
from study.train import TrainResult, read_progress, train

EVAL_FIELDS = tuple(f.name for f in dataclasses.fields(EvalConfig))
CURVE_COLUMNS = ("epoch", "patches", "train_loss", "valid_loss", "valid_roc_auc", "valid_pr_auc", "valid_rmse", "lr",
                 "seconds")


def checkpoint_dir(cfg: RunConfig) -> Path:
    """<cache_dir>/checkpoints/<run_id> (git-ignored, next to the decoded audio)."""
    return resolve_path(cfg.data.cache_dir) / "checkpoints" / cfg.run_id


def shared_checkpoint(results_dir: str | Path, run_id: str) -> Path:
    """<results_dir>/checkpoints/<run_id>/best.pt: a run's best weights kept with the results (committed,
    small), so that a fresh clone can tag audio and draw what the network learned."""
    return resolve_path(results_dir) / "checkpoints" / run_id / BEST


def share_checkpoint(cfg: RunConfig, results_dir: str | Path = "results") -> Path:
    """Copy ``cfg``'s run's best.pt next to its results (:func:`shared_checkpoint`) without the validation
    scores it keeps for threshold tuning: the weights, config, tags and thresholds, a few hundred KB."""
    state = load_checkpoint(checkpoint_dir(cfg) / BEST)
    for key in ("valid_scores", "valid_ids"):
        state.pop(key, None)
    return save_checkpoint(shared_checkpoint(results_dir, cfg.run_id), state)


# ---- the experiment -------------------------------------------------------------------------------
def run_experiment(cfg: RunConfig, *, results_dir: str | Path = "results", force: bool = False,
                   on_epoch_end: Callable[[int, dict], None] | None = None) -> Path:
    """Train (resuming when a checkpoint exists), test and write ``results/runs/<run_id>``; return that folder.

    A run already complete for these data is skipped.  ``force`` redoes it from scratch: its
    checkpoints are deleted, the model retrained, and the results folder replaced.  The run's lock
    (study.locks) is held throughout, so a second worker on the same store waits, then skips it.
    ``on_epoch_end(epoch, record)`` is called after each epoch's checkpoint (``study train``'s display).
    """
    models.check_model_name(cfg.model.model, network=True)  # e.g. the GBT is refused before any data
    started = time.perf_counter()
    collection = data.load_collection(cfg.data)
    stored = reusable_run(results_dir, cfg.run_id, collection.manifest_hash(), force=force)
    if stored is not None:
        return stored
    launch = launch_info()
    with run_lock(results_dir, cfg.run_id) if launch.is_main else contextlib.nullcontext():
        stored = None if force else reusable_run(results_dir, cfg.run_id, collection.manifest_hash())
        if stored is not None:  # stored by the worker this one waited for
            return stored
        return _run(cfg, collection, launch, results_dir=results_dir, force=force, started=started,
                    on_epoch_end=on_epoch_end)


def _run(cfg: RunConfig, collection: Collection, launch: DistInfo, *, results_dir: str | Path, force: bool,
         started: float, on_epoch_end: Callable[[int, dict], None] | None) -> Path:
    if launch.is_main:
        print(cfg)
    seed_everything(cfg.train.seed)  # the initial weights are part of the run
    model = models.build_model(cfg.model, n_tags=len(collection.tags), audio_cfg=cfg.audio)
    patch_samples, windows = _checked_lengths(cfg, model, collection)
    cache, collection = _ensure_cache(collection, cfg, launch)  # hours for a large collection: before any group
    setup_seconds = time.perf_counter() - started
    dist = setup_distributed(cfg.train.device)
    try:
        folder = checkpoint_dir(cfg)
        if force and dist.is_main and folder.exists():
            shutil.rmtree(folder)
        barrier(dist)
        result = _train(cfg, model, collection, cache, folder, dist, patch_samples, windows, on_epoch_end)
        run_dir = run_path(results_dir, cfg.run_id)
        if dist.is_main:
            run_dir = _test_and_record(cfg, result.model, collection, cache, windows, history=result.history,
                                       training=_training_record(result), results_dir=results_dir,
                                       timings={"data": setup_seconds, "train": result.seconds})
        barrier(dist)
    finally:
        teardown_distributed()
    return run_dir


def _checked_lengths(cfg: RunConfig, model: nn.Module, collection: Collection) -> tuple[int, dict[str, Any]]:
    """The training patch and evaluation windows, and the splits, checked before any audio is decoded."""
    patch_samples = patch_length(model, cfg.train.patch_seconds, cfg.audio.sample_rate)
    windows = eval_windows(cfg, model)
    _check_splits(collection, cfg)
    return patch_samples, windows


def _check_splits(collection: Collection, cfg: RunConfig) -> None:
    counts = {split: len(collection.ids(split, cfg.data.train_size if split == "train" else 0))
              for split in ("train", "valid", "test")}
    if not all(counts.values()):
        raise ValueError(f"{collection.name}: {counts['train']} training, {counts['valid']} validation and "
                         f"{counts['test']} test clips; a run needs all three")


def _ensure_cache(collection: Collection, cfg: RunConfig, launch: DistInfo):
    """The first process on each machine builds or opens the cache; the others wait for it to be complete.

    Called before the process group exists, so the wait has no collective timeout however long
    decoding takes (`study cache` beforehand avoids the wait altogether).
    """
    out = ensure_cache(collection, cfg) if launch.local_rank == 0 else wait_for_cache(collection, cfg)
    _check_splits(out[1], cfg)  # clips that would not decode may have emptied a split
    return out


def _train(cfg: RunConfig, model: nn.Module, collection: Collection, cache, folder: Path, dist: DistInfo,
           patch_samples: int, windows: dict[str, Any],
           on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    train_ids = collection.ids("train", cfg.data.train_size)
    valid_ids = collection.ids("valid")
    train_labels = collection.label_rows(train_ids)
    patches = RandomPatches(cache, train_ids, train_labels, patch_samples=patch_samples, seed=cfg.train.seed,
                            patches_per_epoch=cfg.train.epoch_patches)
    valid = SongSet(reader=cache, track_ids=valid_ids, labels=collection.label_rows(valid_ids), **windows)
    return train(model, patches, valid=valid, config=cfg, checkpoint_dir=folder, tags=collection.tags,
                 is_regression=collection.is_regression, train_labels=train_labels, dist=dist,
                 on_epoch_end=on_epoch_end if dist.is_main else None)


def _training_record(result: TrainResult) -> dict[str, Any]:
    return {"best_epoch": result.best_epoch, "epochs": len(result.history), "selection": result.selection,
            "best_metric": result.best_metric, "stop_reason": result.stop_reason,
            "interruptions": result.interruptions, "world_size": result.world_size,
            "checkpoint": portable_path(result.checkpoint_dir / BEST)}


def _test_and_record(cfg: RunConfig, model: nn.Module, collection: Collection, cache, windows: dict[str, Any], *,
                     history: list[dict], training: dict, results_dir: str | Path,
                     timings: dict[str, float]) -> Path:
    """Song-level test predictions (§4: the mean over each clip's windows), recorded as the run folder."""
    device = next(model.parameters()).device
    test_ids = collection.ids("test")
    started = time.perf_counter()
    scores, n_windows = predict_clips(model, cache, test_ids, **windows, device=device,
                                      batch_size=cfg.train.batch_size,
                                      amp=amp_enabled(device, cfg.train.mixed_precision), progress=True,
                                      return_windows=True)
    record = protocol(**windows, sample_rate=cfg.audio.sample_rate, n_windows=n_windows,
                      rmse="sqrt of the mean squared error over every (clip, regression tag) pair",
                      training=training)
    curve = pd.DataFrame(history, columns=list(CURVE_COLUMNS)) if history else None
    return record_run(results_dir, cfg.run_id, config=cfg, collection=collection, test_ids=test_ids, scores=scores,
                      protocol=record, curve=curve, timings={**timings, "test": time.perf_counter() - started})


# ---- re-scoring a trained checkpoint ----------------------------------------------------------------
def evaluate_checkpoint(cfg: RunConfig, *, checkpoint: str | Path | None = None, results_dir: str | Path = "results",
                        force: bool = False) -> Path:
    """Score a trained model on the test split under ``cfg``'s evaluation protocol; a run of its own.

    The checkpoint is ``checkpoint`` (its training config is kept, ``cfg`` gives only the eval
    fields and where to run: device, data and cache folders) or else the best.pt of ``cfg``'s own run.
    """
    if checkpoint is None:
        checkpoint = checkpoint_dir(cfg) / BEST
    else:
        trained = RunConfig.from_dict(load_checkpoint(checkpoint)["config"])
        given = cfg.flat()
        cfg = trained.with_overrides(**{name: given[name] for name in EVAL_FIELDS + EXECUTION_FIELDS})
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no trained checkpoint — run `study train` with the same settings first")
    collection = data.load_collection(cfg.data)
    stored = reusable_run(results_dir, cfg.run_id, collection.manifest_hash(), force=force)
    if stored is not None:
        return stored
    print(cfg)
    model, meta = load_tagger(checkpoint, resolve_device(cfg.train.device))
    if list(meta["tags"]) != list(collection.tags):
        raise ValueError(f"{checkpoint}: trained on tags {meta['tags'][:5]}... "
                         f"but the collection has {collection.tags[:5]}...")
    windows = eval_windows(cfg, model)
    started = time.perf_counter()
    cache, collection = ensure_cache(collection, cfg)
    last = checkpoint.with_name(LAST)
    progress = load_checkpoint(last).get("progress", {}) if last.is_file() else {}
    history = progress.get("history", meta.get("history", []))
    training = {"best_epoch": meta.get("epoch"), "epochs": len(history), "selection": meta.get("selection"),
                "best_metric": meta.get("best_metric"),
                "stop_reason": progress.get("stop_reason") if progress.get("finished") else "interrupted",
                "interruptions": progress.get("interruptions", 0), "world_size": meta.get("world_size", 1),
                "checkpoint": portable_path(checkpoint.resolve())}
    return _test_and_record(cfg, model, collection, cache, windows, history=history, training=training,
                            results_dir=results_dir, timings={"data": time.perf_counter() - started})


def evaluate_pretrained(name: str, cfg: RunConfig, *, device: torch.device | str = "cpu",
                        results_dir: str | Path = "results", force: bool = False, batch_size: int = 32) -> Path:
    """Score ``name`` on the test split of ``cfg``'s data (e.g. MTT, pons2018) with musicnn's protocol and
    the study's metrics; writes a run folder whose metrics.json also holds the authors' ``reported`` figures.

    ``cfg`` gives the data fields and the bootstrap settings; the model fields are the pretrained
    model's.  Tags are matched by name; collection tags the model does not know are an error,
    found before any audio is decoded.
    """
    published = pretrained.run_config(name)
    bootstrap = {"bootstrap_samples": cfg.eval.bootstrap_samples, "confidence": cfg.eval.confidence}
    run_cfg = dataclasses.replace(published, data=cfg.data, eval=dataclasses.replace(published.eval, **bootstrap))
    collection = data.load_collection(run_cfg.data)
    stored = reusable_run(results_dir, run_cfg.run_id, collection.manifest_hash(), force=force)
    if stored is not None:
        return stored
    model, meta = pretrained.load_pretrained(name, device)
    unknown = [tag for tag in collection.tags if tag not in meta["tags"]]
    if unknown:
        raise ValueError(f"{name} was trained on other tags; the {collection.name} collection has {len(unknown)} "
                         f"it does not know, e.g. {unknown[:5]}")
    columns = [meta["tags"].index(tag) for tag in collection.tags]  # model output -> collection tag order
    started = time.perf_counter()
    cache, collection = ensure_cache(collection, run_cfg)
    timings = {"data": time.perf_counter() - started}
    test_ids = collection.ids("test")
    started = time.perf_counter()
    scores = np.stack([pretrained.song_scores(model, cache.read(t), batch_size=batch_size)[columns] for t in test_ids])
    timings["test"] = time.perf_counter() - started
    reported = meta["reported"]  # the package's own experiment.result, stored beside ours
    print(f"{name}: musicnn's experiment.result gives ROC-AUC {reported.get('roc_auc', float('nan')):.4f}, "
          f"PR-AUC {reported.get('pr_auc', float('nan')):.4f} on its own test set")
    musicnn_protocol = {"aggregation": "mean", "patch_frames": pretrained.PATCH_FRAMES,
                        "hop_frames": pretrained.PATCH_FRAMES,
                        "spectrogram": "whole clip, then cut into patches (musicnn's extractor)",
                        "trailing_partial_window": "dropped; a clip shorter than a patch is zero-padded to one",
                        "output": "sigmoid probabilities", "pretrained": name}
    return record_run(results_dir, run_cfg.run_id, config=run_cfg, collection=collection, test_ids=test_ids,
                      scores=scores, protocol=musicnn_protocol, timings=timings, extra_metrics={"reported": reported})


# ---- command line ---------------------------------------------------------------------------------
def _train_command(args: argparse.Namespace) -> int:
    """One run with the display ``study batch`` shows: the estimate first, then where the run stands after
    each epoch (elapsed, time to go), and what a stop keeps."""
    from study.estimate import estimate
    from study.progress import GridDisplay, duration
    from study.scheduler import Outcome, Point

    cfg = config_from_args(args)
    if not launch_info().is_main:
        run_experiment(cfg, results_dir=args.results_dir, force=args.force)
        return 0
    table, _ = estimate([cfg], {cfg.data.whole(): data.load_collection(cfg.data.whole())},
                        results_dir=args.results_dir, probe=False)
    row = table.iloc[0]
    seconds = float(row["seconds"])
    folder = checkpoint_dir(cfg)
    point = Point(run_id=cfg.run_id, model=cfg.model.model, notebook="", output="", parameters={}, log=None,
                  progress_dir=folder, estimate_seconds=seconds)
    print(f"estimate: about {duration(seconds)} on this machine ({row['basis']})" if seconds == seconds else
          f"estimate: none yet ({row['basis']}); `study batch GRID --dry-run` times an epoch here", flush=True)
    print("stop with Ctrl-C (or SIGTERM): the run keeps its last finished epoch, and the same command resumes it",
          flush=True)
    display, began = GridDisplay(total=1), time.monotonic()
    display.started(point, 0)

    def show(epoch: int, record: dict) -> None:
        elapsed = time.monotonic() - began
        display.tick(eta=max(0.0, seconds - elapsed) if seconds == seconds else None)
        display.progress(point, read_progress(folder) or {}, elapsed=elapsed)

    try:
        run_experiment(cfg, results_dir=args.results_dir, force=args.force, on_epoch_end=show)
    finally:
        display.close()
    display.finished(Outcome(point, "done", time.monotonic() - began))
    return 0


def _evaluate_command(args: argparse.Namespace) -> int:
    """The checkpoint is --checkpoint, or the one `study train` wrote for the same preset and non-evaluation fields."""
    cfg = config_from_args(args)
    if args.pretrained:  # a released musicnn tagger instead of a checkpoint of ours
        evaluate_pretrained(args.pretrained, cfg, device=resolve_device(cfg.train.device),
                            results_dir=args.results_dir, force=args.force)
        return 0
    given = [name for name in RunConfig.flat_fields() if getattr(args, name, None) is not None]
    training_fields = [name for name in given if name not in EVAL_FIELDS]
    checkpoint = args.checkpoint
    refused = [name for name in training_fields if name not in EXECUTION_FIELDS]
    if checkpoint and refused:
        raise UserError(f"--checkpoint keeps the checkpoint's training settings, so {', '.join(refused)} "
                        f"cannot be given — give only evaluation fields ({', '.join(EVAL_FIELDS)}) and where to run "
                        f"({', '.join(EXECUTION_FIELDS)})")
    if checkpoint:  # the checkpoint's own config, with only the evaluation fields the user gave
        trained = RunConfig.from_dict(load_checkpoint(checkpoint)["config"])
        cfg = trained.with_overrides(**{name: getattr(args, name) for name in given})
    else:
        trained = RunConfig.from_flat(args.preset, **{name: getattr(args, name) for name in training_fields})
        checkpoint = checkpoint_dir(trained) / BEST
    evaluate_checkpoint(cfg, checkpoint=checkpoint, results_dir=args.results_dir, force=args.force)
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    train_parser = subparsers.add_parser(
        "train", help="train, test and store one run (resumes from its checkpoint; torchrun for several GPUs)",
        description="Train one configuration and write results/runs/<run_id>. Every config field is an option, "
                    "e.g. study train --preset smoke --model waveform --train_size 100. Several GPUs or nodes: "
                    "torchrun --nproc_per_node N -m study train ...")
    add_run_arguments(train_parser)
    train_parser.set_defaults(func=_train_command)

    evaluate_parser = subparsers.add_parser(
        "evaluate", help="re-score a trained run on the test split under another evaluation protocol",
        description="Score the checkpoint that `study train` wrote for the same settings (or --checkpoint) "
                    "with the given evaluation fields, e.g. study evaluate --preset default --whole_clip true.")
    add_run_arguments(evaluate_parser)
    evaluate_parser.add_argument("--checkpoint", default=None, help="a best.pt to score (default: the run's own)")
    evaluate_parser.add_argument("--pretrained", metavar="NAME", default=None,
                                 help="score a released musicnn tagger (MTT_musicnn, MSD_musicnn, MTT_vgg, MSD_vgg)")
    evaluate_parser.set_defaults(func=_evaluate_command)
