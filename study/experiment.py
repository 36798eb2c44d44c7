"""One experiment end to end: data, cache, model, training, song-level test, results folder.

``run_experiment(cfg)`` is what notebooks, ``study train`` and batch grids call; it resumes an
interrupted run from its checkpoints and skips a run whose results are already complete.
``study evaluate`` re-scores a trained checkpoint under another evaluation protocol (e.g. the
whole clip in one pass instead of averaged 15 s windows, the question §4 leaves open) and saves
that as a run of its own.  Under ``torchrun`` every process calls the same function; rank 0
validates, tests and writes.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from study.checkpoint import BEST, LAST, load_checkpoint, load_tagger
from study.config import EvalConfig, RunConfig, add_config_arguments, config_from_args
from study.data.patches import seconds_to_samples
from study.device import (DistInfo, amp_enabled, barrier, resolve_device, seed_everything, setup_distributed,
                          teardown_distributed)
from study.errors import UserError
from study.evaluate import SongSet, predict_clips, protocol
from study.metrics import score_test_set
from study.train import TrainResult, train

EVAL_FIELDS = tuple(f.name for f in dataclasses.fields(EvalConfig))
CURVE_COLUMNS = ("epoch", "patches", "train_loss", "valid_loss", "valid_roc_auc", "valid_pr_auc", "valid_rmse", "lr",
                 "seconds")


# ---- settings derived from the config and the model ---------------------------------------------
def train_patch_samples(cfg: RunConfig, model: nn.Module) -> int:
    """Training patch length: patch_seconds (§4: 15 s, 3 s on MTT), or a baseline's fixed input."""
    fixed = getattr(model, "fixed_samples", None)
    patch = fixed or seconds_to_samples(cfg.train.patch_seconds, cfg.audio.sample_rate)
    minimum = getattr(model, "min_samples", 1)
    if patch < minimum:
        raise ValueError(f"patch_seconds {cfg.train.patch_seconds} gives {patch} samples but {cfg.model.model} needs "
                         f"at least {minimum} (e.g. the 9-layer waveform model cannot take 3 s)")
    return patch


def eval_windows(cfg: RunConfig, model: nn.Module) -> dict[str, Any]:
    """Evaluation windows: eval_patch_seconds every eval_hop_seconds, a baseline's fixed input, or the whole clip.

    A fixed-input baseline keeps the configured ratio of hop to patch (non-overlapping by default).
    """
    rate = cfg.audio.sample_rate
    fixed = getattr(model, "fixed_samples", None)
    if fixed:
        patch = fixed
        hop = max(1, round(fixed * cfg.eval.eval_hop_seconds / cfg.eval.eval_patch_seconds))
    else:
        patch = seconds_to_samples(cfg.eval.eval_patch_seconds, rate)
        hop = seconds_to_samples(cfg.eval.eval_hop_seconds, rate)
    return {"patch_samples": patch, "hop_samples": hop, "whole_clip": cfg.eval.whole_clip}


def checkpoint_dir(cfg: RunConfig) -> Path:
    """<cache_dir>/checkpoints/<run_id> (git-ignored, next to the decoded audio)."""
    from study.data.cache import resolve_cache_dir

    return resolve_cache_dir(cfg.data.cache_dir) / "checkpoints" / cfg.run_id


# ---- the experiment -------------------------------------------------------------------------------
def run_experiment(cfg: RunConfig, *, results_dir: str | Path = "results", force: bool = False) -> Path:
    """Train (resuming when a checkpoint exists), test and write ``results/runs/<run_id>``; return that folder.

    A complete run is skipped.  ``force`` redoes it from scratch: its checkpoints are deleted,
    the model retrained, and the results folder replaced.
    """
    from study import results
    from study.data import load_collection
    from study.models import build_model

    run_dir = results.run_path(results_dir, cfg.run_id)
    if results.is_complete(run_dir) and not force:
        print(f"{cfg.run_id}: complete in {run_dir}; skipped (force=True reruns it)")
        return run_dir
    dist = setup_distributed(cfg.train.device)
    started = time.perf_counter()
    try:
        if dist.is_main:
            print(cfg)
        collection = load_collection(cfg.data)
        cache, collection = _ensure_cache(collection, cfg, dist)
        setup_seconds = time.perf_counter() - started
        seed_everything(cfg.train.seed)  # the initial weights are part of the run
        model = build_model(cfg.model, n_tags=len(collection.tags), audio_cfg=cfg.audio)
        folder = checkpoint_dir(cfg)
        if force and dist.is_main and folder.exists():
            shutil.rmtree(folder)
        barrier(dist)
        result = _train(cfg, model, collection, cache, folder, dist)
        if dist.is_main:
            run_dir = _score_and_write(cfg, result.model, collection, cache, history=result.history,
                                       training=_training_record(result), results_dir=results_dir, overwrite=True,
                                       timings={"data": setup_seconds, "train": result.seconds})
        barrier(dist)
    finally:
        teardown_distributed()
    return run_dir


def _ensure_cache(collection, cfg: RunConfig, dist: DistInfo):
    """Rank 0 builds or opens the cache first; the other ranks open the finished one."""
    from study.data.cache import ensure_cache

    if dist.is_main:
        out = ensure_cache(collection, cfg.data, cfg.audio)
    barrier(dist)
    if not dist.is_main:
        out = ensure_cache(collection, cfg.data, cfg.audio, progress=False)
    return out


def _train(cfg: RunConfig, model: nn.Module, collection, cache, folder: Path, dist: DistInfo) -> TrainResult:
    from study.data.patches import RandomPatches

    train_ids = collection.ids("train", cfg.data.train_size)
    valid_ids = collection.ids("valid")
    test_ids = collection.ids("test")
    if not train_ids or not valid_ids or not test_ids:
        raise ValueError(f"{collection.name}: {len(train_ids)} training, {len(valid_ids)} validation and "
                         f"{len(test_ids)} test clips; a run needs all three")
    train_labels = collection.label_rows(train_ids)
    patches = RandomPatches(cache, train_ids, train_labels, patch_samples=train_patch_samples(cfg, model),
                            seed=cfg.train.seed, patches_per_epoch=cfg.train.epoch_patches)
    valid = SongSet(reader=cache, track_ids=valid_ids, labels=collection.label_rows(valid_ids),
                    **eval_windows(cfg, model))
    return train(model, patches, valid=valid, cfg=cfg.train, checkpoint_dir=folder, tags=collection.tags,
                 is_regression=collection.is_regression, train_labels=train_labels, run_config=cfg.to_dict(),
                 dist=dist)


def _training_record(result: TrainResult) -> dict[str, Any]:
    return {"best_epoch": result.best_epoch, "epochs": len(result.history), "selection": result.selection,
            "best_metric": result.best_metric, "stop_reason": result.stop_reason,
            "interruptions": result.interruptions, "checkpoint": str(result.checkpoint_dir / BEST)}


def _score_and_write(cfg: RunConfig, model: nn.Module, collection, cache, *, history: list[dict], training: dict,
                     results_dir: str | Path, overwrite: bool, timings: dict[str, float]) -> Path:
    """Song-level test predictions, metrics with bootstrap intervals, and the run folder."""
    from study import results

    device = next(model.parameters()).device
    windows = eval_windows(cfg, model)
    test_ids = collection.ids("test")
    started = time.perf_counter()
    scores, n_windows = predict_clips(model, cache, test_ids, **windows, device=device,
                                      batch_size=cfg.train.batch_size,
                                      amp=amp_enabled(device, cfg.train.mixed_precision), progress=True,
                                      return_windows=True)
    timings = {**timings, "test": time.perf_counter() - started}
    y_true = collection.label_rows(test_ids)
    tags, is_regression = list(collection.tags), collection.is_regression
    metrics, per_tag = score_test_set(y_true, scores, tags, is_regression, samples=cfg.eval.bootstrap_samples,
                                      confidence=cfg.eval.confidence, seed=cfg.train.seed)
    overall, ci, excluded = metrics["overall"], metrics["ci"], metrics["excluded"]
    print(f"test ({len(test_ids)} clips): " + "  ".join(
        f"{name} {value:.4f} [{ci[name][0]:.4f}, {ci[name][1]:.4f}]" for name, value in overall.items()
        if not np.isnan(value)) + (f"  ({len(excluded)} tags without positives or negatives left out, e.g. "
                                   f"{', '.join(excluded[:5])})" if excluded else ""))
    curve = pd.DataFrame(history, columns=list(CURVE_COLUMNS)) if history else None
    record = protocol(**windows, sample_rate=cfg.audio.sample_rate, n_windows=n_windows,
                      bootstrap=metrics["bootstrap"],
                      rmse="sqrt of the mean squared error over every (clip, regression tag) pair",
                      training=training)
    predictions = {"track_ids": test_ids, "y_true": y_true, "y_score": scores, "tags": tags,
                   "is_regression": is_regression}
    return results.write_run(results_dir, cfg.run_id, config=cfg.to_dict(), metrics=metrics, per_tag=per_tag,
                             curve=curve, protocol=record, provenance=results.provenance(collection, timings),
                             predictions=predictions, overwrite=overwrite)


# ---- re-scoring a trained checkpoint ----------------------------------------------------------------
def evaluate_checkpoint(cfg: RunConfig, *, checkpoint: str | Path | None = None, results_dir: str | Path = "results",
                        force: bool = False) -> Path:
    """Score a trained model on the test split under ``cfg``'s evaluation protocol; a run of its own.

    The checkpoint is ``checkpoint`` (its training config is kept, ``cfg`` gives only the eval
    fields) or else the best.pt of ``cfg``'s own run.
    """
    from study import results
    from study.data import load_collection
    from study.data.cache import ensure_cache

    if checkpoint is None:
        checkpoint = checkpoint_dir(cfg) / BEST
    else:
        trained = RunConfig.from_dict(load_checkpoint(checkpoint)["config"])
        cfg = trained.with_overrides(**{name: getattr(cfg.eval, name) for name in EVAL_FIELDS})
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no trained checkpoint — run `study train` with the same settings first")
    run_dir = results.run_path(results_dir, cfg.run_id)
    if results.is_complete(run_dir) and not force:
        print(f"{cfg.run_id}: complete in {run_dir}; skipped (--force re-scores it)")
        return run_dir
    print(cfg)
    device = resolve_device(cfg.train.device)
    model, meta = load_tagger(checkpoint, device)
    collection = load_collection(cfg.data)
    cache, collection = ensure_cache(collection, cfg.data, cfg.audio)
    if list(meta["tags"]) != list(collection.tags):
        raise ValueError(f"{checkpoint}: trained on tags {meta['tags'][:5]}... "
                         f"but the collection has {collection.tags[:5]}...")
    last = checkpoint.with_name(LAST)
    progress = load_checkpoint(last).get("progress", {}) if last.is_file() else {}
    history = progress.get("history", meta.get("history", []))
    training = {"best_epoch": meta.get("epoch"), "epochs": len(history), "selection": meta.get("selection"),
                "best_metric": meta.get("best_metric"),
                "stop_reason": progress.get("stop_reason") if progress.get("finished") else "interrupted",
                "interruptions": progress.get("interruptions", 0), "checkpoint": str(checkpoint)}
    return _score_and_write(cfg, model, collection, cache, history=history, training=training,
                            results_dir=results_dir, overwrite=True, timings={})


# ---- command line ---------------------------------------------------------------------------------
def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--results-dir", default="results", help="results folder (runs go to <it>/runs)")
    parser.add_argument("--force", action="store_true", help="redo a run whose results are already complete")


def _train_command(args: argparse.Namespace) -> int:
    run_experiment(config_from_args(args), results_dir=args.results_dir, force=args.force)
    return 0


def _evaluate_command(args: argparse.Namespace) -> int:
    """The checkpoint is --checkpoint, or the one `study train` wrote for the same preset and non-evaluation fields."""
    cfg = config_from_args(args)
    if args.pretrained:  # issue 7: a released musicnn tagger instead of a checkpoint of ours
        from study.pretrained import evaluate_pretrained

        evaluate_pretrained(args.pretrained, cfg, device=resolve_device(cfg.train.device),
                            results_dir=args.results_dir, force=args.force)
        return 0
    given = [name for name in RunConfig.flat_fields() if getattr(args, name, None) is not None]
    training_fields = [name for name in given if name not in EVAL_FIELDS]
    checkpoint = args.checkpoint
    if checkpoint and training_fields:
        raise UserError(f"--checkpoint keeps the checkpoint's training settings, so {', '.join(training_fields)} "
                        f"cannot be given — give only evaluation fields ({', '.join(EVAL_FIELDS)})")
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
    _add_run_arguments(train_parser)
    train_parser.set_defaults(func=_train_command)

    evaluate_parser = subparsers.add_parser(
        "evaluate", help="re-score a trained run on the test split under another evaluation protocol",
        description="Score the checkpoint that `study train` wrote for the same settings (or --checkpoint) "
                    "with the given evaluation fields, e.g. study evaluate --preset default --whole_clip true.")
    _add_run_arguments(evaluate_parser)
    evaluate_parser.add_argument("--checkpoint", default=None, help="a best.pt to score (default: the run's own)")
    evaluate_parser.add_argument("--pretrained", metavar="NAME", default=None,
                                 help="score a released musicnn tagger (MTT_musicnn, MSD_musicnn, MTT_vgg, MSD_vgg)")
    evaluate_parser.set_defaults(func=_evaluate_command)
