"""One training loop for every model (§4 "Parameters").

Adam with learning rate 0.001; binary cross-entropy for datasets of classification tags and MSE
on sigmoid outputs for the 1.2M set (§4, §5.1 footnote 7: "all output nodes are sigmoidal"); an epoch is
one random patch of every training song; the song-level validation metric, computed after
every epoch exactly as the test is (mean of moving-window predictions), drives early stopping.

Early stopping watches ``TrainConfig.early_stopping``: by default the validation loss, as the
authors' training code kept the checkpoint of lowest validation loss (on a small validation set
the AUCs jump from epoch to epoch while the loss still falls steadily).  ``auto`` watches the
validation macro ROC-AUC when any classification tag has positives and negatives in the
validation set, otherwise -√MSE over the regression tags, otherwise -(validation loss); ``roc_auc``,
``pr_auc`` and ``rmse`` name one.  Higher is better for the selected value; an epoch that does not
beat the best counts towards ``patience``.

Resuming gives the same result as not stopping: every epoch starts by reseeding every generator
from (seed, epoch, rank), the patch sampler and the shuffling are functions of (seed, epoch),
and last.pt holds everything else that changes (weights, optimizer, scaler, early-stopping
state, history).  A run killed mid-epoch repeats that epoch from the previous last.pt.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from study.atomic import atomic_open
from study.checkpoint import BEST, LAST, load_checkpoint, rng_state, save_checkpoint, set_rng_state, update_checkpoint
from study.config import RunConfig, TrainConfig
from study.device import (DistInfo, amp_enabled, autocast, barrier, broadcast_from_main, derived_seed, describe,
                          idle_gpu_warning, keep_freed_memory, loader_workers, resolve_device, seed_everything,
                          set_deterministic)
from study.evaluate import SongSet, predict_clips
from study.metrics import POSITIVE_THRESHOLD, evaluable, evaluate_predictions, tune_thresholds
from study.models import count_params
from study.models.blocks import LogMelMemo, remembering_logmels
from study.progress import progress_bar

LOSSES = ("auto", "bce", "mse", "per_kind")
STOP_REASONS = ("early stopping", "epoch cap", "interrupted")


# ---- loss ---------------------------------------------------------------------------------------
def loss_kind(requested: str, is_regression: np.ndarray) -> str:
    """'auto' -> MSE when any tag is a regression tag (the 1.2M set, §4 and footnote 7), else cross-entropy.

    'per_kind' is cross-entropy on the classification tags and squared error on the regression tags.
    """
    if requested not in LOSSES:
        raise ValueError(f"loss {requested!r} is not known; expected one of {LOSSES}")
    if requested == "auto":
        return "mse" if np.asarray(is_regression, bool).any() else "bce"
    return requested


def positive_weights(train_labels: np.ndarray, is_regression: np.ndarray) -> np.ndarray:
    """(tags,) negatives / positives per classification tag (1 for regression tags and tags without positives).

    The class-imbalance weighting the paper names as future work: a positive of a rare tag
    counts as much as all of its negatives together.  Not capped.
    """
    labels = np.asarray(train_labels, dtype=np.float64)
    positives = (labels >= POSITIVE_THRESHOLD).sum(axis=0)
    weights = np.ones(labels.shape[1])
    usable = ~np.asarray(is_regression, bool) & (positives > 0)
    weights[usable] = (len(labels) - positives[usable]) / positives[usable]
    return weights


class TaggingLoss(nn.Module):
    """Loss on logits (B, tags) against labels (B, tags), in float32 even under autocast.

    bce: binary cross-entropy with logits, ``pos_weight`` per tag when weighted.
    mse: squared error of sigmoid(logits); when weighted, a classification label y gets weight
         1 + (pos_weight - 1)·y (pos_weight for a positive, 1 for a negative), regression tags 1.
    per_kind: bce on the tags flagged False in ``is_regression``, mse on the others; the mean
         over every (clip, tag) entry, so each tag counts once whatever its kind.
    """

    def __init__(self, *, kind: str, pos_weight: np.ndarray | None = None,
                 is_regression: np.ndarray | None = None) -> None:
        super().__init__()
        if kind not in ("bce", "mse", "per_kind"):
            raise ValueError(f"loss kind {kind!r}; expected bce, mse or per_kind")
        if kind == "per_kind" and is_regression is None:
            raise ValueError("the per_kind loss needs is_regression, one flag per tag")
        self.kind = kind
        weights = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)  # (tags,)
        self.register_buffer("pos_weight", weights)
        regression = None if is_regression is None else torch.as_tensor(np.asarray(is_regression, bool))  # (tags,)
        self.register_buffer("is_regression", regression)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)
        squared_error = (torch.sigmoid(logits) - targets) ** 2  # (B, tags)
        if self.kind == "mse":
            if self.pos_weight is not None:
                squared_error = squared_error * (1 + (self.pos_weight - 1) * targets)
            return squared_error.mean()
        cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight,
                                                           reduction="none")  # (B, tags)
        return torch.where(self.is_regression, squared_error, cross_entropy).mean()


def probability_loss(kind: str, probabilities: np.ndarray, targets: np.ndarray,
                     is_regression: np.ndarray | None = None) -> float:
    """The unweighted loss of song-level probabilities (validation loss; comparable across runs of one kind)."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(targets, np.float64)
    cross_entropy = -(y * np.log(p) + (1 - y) * np.log(1 - p))  # (clips, tags)
    squared_error = (p - y) ** 2
    if kind == "bce":
        return float(cross_entropy.mean())
    if kind == "mse":
        return float(squared_error.mean())
    return float(np.where(np.asarray(is_regression, bool), squared_error, cross_entropy).mean())


def build_loss(cfg: TrainConfig, is_regression: np.ndarray, train_labels: np.ndarray | None) -> TaggingLoss:
    kind = loss_kind(cfg.loss, is_regression)
    weights = None
    if cfg.class_weighting:
        if train_labels is None:
            raise ValueError("class_weighting needs the training labels; pass train_labels= or a dataset with .labels")
        weights = positive_weights(train_labels, is_regression)
    return TaggingLoss(kind=kind, pos_weight=weights, is_regression=is_regression if kind == "per_kind" else None)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, lr 0.001 (§4); weight decay (an L2 term, as the authors' code) on kernels only, not biases or BN."""
    kernels = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    others = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    return torch.optim.Adam([{"params": kernels, "weight_decay": cfg.weight_decay},
                             {"params": others, "weight_decay": 0.0}], lr=cfg.learning_rate)


# ---- early stopping -----------------------------------------------------------------------------
def selection_metric(valid_labels: np.ndarray, is_regression: np.ndarray, choice: str = "auto") -> str:
    """Which validation value early stopping maximises (see the module docstring)."""
    named = {"loss": "-valid_loss", "roc_auc": "valid_roc_auc", "pr_auc": "valid_pr_auc", "rmse": "-valid_rmse"}
    if choice in named:
        return named[choice]
    if choice != "auto":
        raise ValueError(f"early_stopping {choice!r}: expected auto, {', '.join(named)}")
    if evaluable(valid_labels, is_regression).any():
        return "valid_roc_auc"
    if np.asarray(is_regression, bool).any():
        return "-valid_rmse"
    return "-valid_loss"


def selection_value(name: str, record: dict[str, float]) -> float:
    return -record[name[1:]] if name.startswith("-") else record[name]


@dataclass
class Progress:
    """What changes from epoch to epoch besides the weights; saved in last.pt.

    After ``lr_patience`` epochs without a new best the learning rate halves and that count starts
    again, as in the authors' training code; after ``patience`` epochs without a new best (not
    reset by a halving) training stops.  ``stop_reason`` says which limit ended the run.
    """

    epoch: int = 0  # last completed epoch
    best_metric: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best one
    plateau_epochs: int = 0  # epochs since the best one or the last halving of the learning rate
    learning_rate: float = 0.0  # the rate the next epoch trains with (0 before the first epoch)
    finished: bool = False
    stop_reason: str = ""  # one of STOP_REASONS once finished, or 'interrupted'
    interruptions: int = 0  # times the run was stopped and resumed
    history: list[dict[str, float]] = field(default_factory=list)

    def update(self, epoch: int, value: float, cfg: TrainConfig) -> bool:
        """Record epoch's selection value; True when it is the best so far.  Sets the next rate and ``finished``."""
        self.epoch = epoch
        improved = self.best_epoch == 0 or value > self.best_metric  # NaN never improves after epoch 1
        if improved:
            self.best_metric, self.best_epoch, self.bad_epochs, self.plateau_epochs = float(value), epoch, 0, 0
        else:
            self.bad_epochs += 1
            self.plateau_epochs += 1
            if cfg.lr_patience > 0 and self.plateau_epochs >= cfg.lr_patience:
                self.learning_rate /= 2
                self.plateau_epochs = 0
        if cfg.patience > 0 and self.bad_epochs >= cfg.patience:
            self.finished, self.stop_reason = True, "early stopping"
        elif epoch >= cfg.max_epochs:
            self.finished, self.stop_reason = True, "epoch cap"
        return improved


@dataclass
class TrainResult:
    model: nn.Module  # the best epoch's weights, unwrapped, on the training device
    history: list[dict[str, float]]
    best_epoch: int
    best_metric: float
    selection: str
    thresholds: dict[str, float | None]
    checkpoint_dir: Path
    epochs_run: int  # epochs trained by this call (0 when the run had finished before)
    seconds: float
    stop_reason: str = ""  # early stopping | epoch cap (STOP_REASONS)
    interruptions: int = 0  # times the run was stopped and resumed on its way
    world_size: int = 1  # processes that trained it (torchrun)


def process_batch(batch_size: int, dist: DistInfo) -> int:
    """This process's share of ``batch_size``, the clips of one step over all processes.

    ``batch_size`` keeps its meaning whatever the number of GPUs (§4's setting stays the paper's),
    so N processes take batch_size / N clips each and DDP averages their gradients.
    """
    if batch_size < 1 or batch_size % dist.world_size:
        nearest = max(1, round(batch_size / dist.world_size)) * dist.world_size
        raise ValueError(f"batch_size {batch_size} is the batch of one step over all {dist.world_size} processes and "
                         f"must be a positive multiple of that number (e.g. {nearest}), or run another number "
                         f"of processes")
    return batch_size // dist.world_size


# ---- the loop -----------------------------------------------------------------------------------
def train(model: nn.Module, train_data: Dataset, *, valid: SongSet, config: RunConfig, checkpoint_dir: str | Path,
          tags: Sequence[str], is_regression: np.ndarray, train_labels: np.ndarray | None = None,
          dist: DistInfo = DistInfo(), progress: bool = True, log: Callable[[str], None] = print,
          on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train ``model`` on random patches, validating at song level each epoch; resume from last.pt.

    ``train_data`` yields (waveform (samples,), labels (tags,)); if it has ``set_epoch`` it is
    called before each epoch (RandomPatches).  ``config`` is the run's: its ``train`` section
    drives the loop, and the whole of it is stored in the checkpoints (so that ``load_tagger`` can
    rebuild the model) and decides whether an existing last.pt belongs to this run.  Under
    torchrun, ``dist`` describes this process: each rank trains on its share of every batch
    (``batch_size`` is the batch over all ranks) and validates a share of the clips; rank 0
    decides and saves.
    """
    cfg = config.train
    started = time.perf_counter()
    keep_freed_memory()
    checkpoint_dir = Path(checkpoint_dir)
    is_regression = np.asarray(is_regression, dtype=bool)
    tags = list(tags)
    if train_labels is None:
        train_labels = getattr(train_data, "labels", None)
    device = resolve_device(cfg.device, dist)
    step_batch = process_batch(cfg.batch_size, dist)
    sync_batchnorm = cfg.sync_batchnorm and dist.distributed
    if sync_batchnorm and device.type != "cuda":
        raise ValueError(f"sync_batchnorm needs CUDA (torch synchronises batch norm across GPUs only); "
                         f"this run is on {device}: use sync_batchnorm false")
    amp = amp_enabled(device, cfg.mixed_precision)
    set_deterministic(cfg.deterministic)
    loss_fn = build_loss(cfg, is_regression, train_labels).to(device)
    selection = selection_metric(valid.labels, is_regression, cfg.early_stopping)

    state = load_checkpoint(checkpoint_dir / LAST) if (checkpoint_dir / LAST).is_file() else None
    if state is not None:
        _check_same_run(checkpoint_dir / LAST, state, config)
        _check_same_processes(checkpoint_dir / LAST, state, dist)
        model.load_state_dict(state["model_state"])
    else:
        _fit_input_stats(model, train_data, cfg)
    model.to(device)
    if sync_batchnorm:  # same parameters and buffers, so checkpoints stay loadable by a plain model
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    run = Progress(learning_rate=cfg.learning_rate) if state is None else _resume(state, optimizer, scaler, cfg)
    if state is not None and dist.is_main:
        log(f"resuming {checkpoint_dir} after epoch {run.epoch} (best {selection} {run.best_metric:.4f} "
            f"at epoch {run.best_epoch})" + (f": already finished ({run.stop_reason})" if run.finished else ""))

    resumed_after = run.epoch  # 0 for a fresh run
    net = _wrap(model, device, dist)
    sampler, loader = _loader(train_data, step_batch, device, dist, cfg)
    workers = loader.num_workers
    if dist.is_main:
        log(_header(model, config, device, amp, dist, selection, train_data, workers))
        write_progress(checkpoint_dir, _progress_event(run, cfg, selection, resumed_after, started=True))
        warning = idle_gpu_warning() if device.type == "cpu" and cfg.device == "auto" else ""
        if warning:
            log(f"WARNING: {warning}")

    first_epoch = resumed_after + 1
    valid_logmels = LogMelMemo()  # the validation pass repeats every epoch: its log-mels are taken once
    while not run.finished and run.epoch < cfg.max_epochs:
        epoch = run.epoch + 1
        epoch_started = time.perf_counter()
        seed_everything(derived_seed(cfg.seed, epoch, dist.rank))  # no hidden state carried between epochs
        sampler.set_epoch(epoch)
        if hasattr(train_data, "set_epoch"):
            train_data.set_epoch(epoch)
        for group in optimizer.param_groups:
            group["lr"] = run.learning_rate
        train_loss = _train_epoch(net, loader, optimizer, scaler, loss_fn, device, amp, dist,
                                  desc=f"epoch {epoch}/{cfg.max_epochs}", show=progress and dist.is_main)
        record = {"epoch": epoch, "train_loss": train_loss}
        improved = False
        _share_main_buffers(model, dist)  # every rank validates rank 0's model, on its share of the clips
        with remembering_logmels(model, valid_logmels):
            scores = predict_clips(model, valid.reader, valid.track_ids, patch_samples=valid.patch_samples,
                                   hop_samples=valid.hop_samples, whole_clip=valid.whole_clip, device=device,
                                   batch_size=cfg.batch_size, amp=amp, dist=dist)
        if dist.is_main:
            record.update(_validation_record(scores, valid.labels, tags, is_regression, loss_fn.kind))
            record["lr"] = run.learning_rate
            record["patches"] = (run.history[-1]["patches"] if run.history else 0) + len(train_data)
            record["seconds"] = time.perf_counter() - epoch_started
            improved = run.update(epoch, selection_value(selection, record), cfg)
            run.history.append(record)
            log(_epoch_line(record, run, selection, cfg))
        run = broadcast_from_main(dist, run)  # every rank stops together
        if dist.is_main:
            common = {"config": config.to_dict(), "train_config": asdict(cfg), "tags": tags,
                      "regression_tags": [t for t, r in zip(tags, is_regression) if r], "selection": selection,
                      "world_size": dist.world_size}
            _save_epoch(checkpoint_dir, common, model, optimizer, scaler, run,
                        best_scores=(scores, valid.track_ids) if improved else None)
            write_progress(checkpoint_dir, _progress_event(run, cfg, selection, resumed_after))  # after last.pt holds the epoch
        barrier(dist)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)

    thresholds = _restore_best(model, checkpoint_dir / BEST, valid, tags, is_regression, dist)
    return TrainResult(model=model, history=run.history, best_epoch=run.best_epoch, best_metric=run.best_metric,
                       selection=selection, thresholds=thresholds, checkpoint_dir=checkpoint_dir,
                       epochs_run=run.epoch - first_epoch + 1, seconds=time.perf_counter() - started,
                       stop_reason=run.stop_reason, interruptions=run.interruptions, world_size=dist.world_size)


def _loader(train_data: Dataset, step_batch: int, device: torch.device, dist: DistInfo,
            cfg: TrainConfig) -> tuple[DistributedSampler, DataLoader]:
    """(sampler, loader): this rank's shuffled share of the patches in batches of ``step_batch``."""
    sampler = DistributedSampler(train_data, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=cfg.seed)
    per_rank = len(sampler)
    loader = DataLoader(train_data, batch_size=step_batch, sampler=sampler,
                        num_workers=loader_workers(cfg.num_workers, device, dist), pin_memory=device.type == "cuda",
                        drop_last=per_rank > 1 and per_rank % step_batch == 1)  # no batch of 1 for batch norm
    return sampler, loader


def _resume(state: dict, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, cfg: TrainConfig) -> Progress:
    """The optimiser, scaler, random streams and progress of a last.pt; a run that had not finished
    counts one more interruption."""
    optimizer.load_state_dict(state["optimizer_state"])
    if state["scaler_state"]:  # empty when saved by a disabled scaler (CPU, MPS): an enabled one starts afresh
        scaler.load_state_dict(state["scaler_state"])
    run = Progress(**state["progress"])
    run.learning_rate = run.learning_rate or cfg.learning_rate
    set_rng_state(state["rng_state"])
    if not run.finished:
        run.interruptions += 1
    return run


def _restore_best(model: nn.Module, path: Path, valid: SongSet, tags: list[str], is_regression: np.ndarray,
                  dist: DistInfo) -> dict:
    """Load best.pt's weights into ``model``; its decision thresholds, tuned on its validation scores
    once and stored in it."""
    best = load_checkpoint(path, map_location="cpu")
    model.load_state_dict(best["model_state"])
    thresholds = best.get("thresholds")
    if thresholds is None:
        thresholds = tune_thresholds(valid.labels, best["valid_scores"].numpy(), tags, is_regression)
        if dist.is_main:
            update_checkpoint(path, thresholds=thresholds)
    barrier(dist)
    return thresholds


def _save_epoch(folder: Path, common: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler, run: Progress, *, best_scores: tuple | None) -> None:
    """best.pt (when this epoch is the best) and then last.pt; each write is atomic.

    Best first: a crash between the two writes repeats this epoch on resume and rewrites the
    same best.pt, whereas the other order could leave a last.pt ahead of a stale best.pt.
    """
    common = {**common, "epoch": run.epoch, "best_metric": run.best_metric, "history": run.history,
              "model_state": model.state_dict()}
    if best_scores is not None:
        scores, track_ids = best_scores
        save_checkpoint(folder / BEST, {**common, "thresholds": None, "valid_scores": torch.from_numpy(scores),
                                        "valid_ids": list(track_ids)})
    save_checkpoint(folder / LAST, {**common, "optimizer_state": optimizer.state_dict(),
                                    "scaler_state": scaler.state_dict(), "progress": asdict(run),
                                    "rng_state": rng_state()})


def _train_epoch(net: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                 loss_fn: TaggingLoss, device: torch.device, amp: bool, dist: DistInfo, *, desc: str,
                 show: bool) -> float:
    """One pass over the loader; returns the mean training loss over every rank's patches."""
    net.train()
    accumulate = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    loss_sum = torch.zeros((), dtype=accumulate, device=device)  # sum of loss x patches, kept on device
    patches = 0
    bar = progress_bar(loader, desc=desc, show=show, leave=False, dynamic_ncols=True)
    for step, (waveform, target) in enumerate(bar):
        waveform = waveform.to(device, dtype=torch.float32, non_blocking=True)  # (B, samples)
        target = target.to(device, dtype=torch.float32, non_blocking=True)  # (B, tags)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            logits = net(waveform)  # (B, tags)
        loss = loss_fn(logits, target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach().to(accumulate) * len(target)
        patches += len(target)
        if show and step % 10 == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / max(patches, 1):.4f}")
    total = torch.stack([loss_sum, torch.tensor(patches, dtype=accumulate, device=device)])
    if dist.distributed:
        torch_dist.all_reduce(total)
    mean = float(total[0] / total[1].clamp_min(1))
    if not math.isfinite(mean):
        raise FloatingPointError(f"{desc}: the training loss is {mean}; "
                                 f"try a lower learning_rate or mixed_precision false")
    return mean


def _validation_record(scores: np.ndarray, labels: np.ndarray, tags: Sequence[str], is_regression: np.ndarray,
                       kind: str) -> dict[str, float]:
    overall = evaluate_predictions(labels, scores, tags, is_regression)["overall"]
    return {"valid_loss": probability_loss(kind, scores, labels, is_regression), "valid_roc_auc": overall["roc_auc"],
            "valid_pr_auc": overall["pr_auc"], "valid_rmse": overall["rmse"]}


def _share_main_buffers(model: nn.Module, dist: DistInfo) -> None:
    """Rank 0's buffers (batch-norm running statistics) on every rank.

    DDP copies rank 0's buffers to the others before each step, but each rank then updates its
    copy with its own share of the batch, so after an epoch they differ; the parameters never do.
    """
    if dist.distributed:
        for buffer in model.buffers():
            torch_dist.broadcast(buffer, src=0)


def _wrap(model: nn.Module, device: torch.device, dist: DistInfo) -> nn.Module:
    if not dist.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _fit_input_stats(model: nn.Module, train_data: Dataset, cfg: TrainConfig) -> None:
    """Log-mel mean/std from up to ``norm_clips`` training patches spread over the set (no-op for waveform models)."""
    fit = getattr(model, "fit_input_stats", None)
    if fit is None or cfg.norm_clips <= 0 or len(train_data) == 0:
        return
    if hasattr(train_data, "set_epoch"):
        train_data.set_epoch(0)
    clips = getattr(train_data, "clips", len(train_data))
    picks = np.unique(np.linspace(0, clips - 1, min(cfg.norm_clips, clips)).round().astype(int))
    chunks = [picks[i:i + cfg.batch_size] for i in range(0, len(picks), cfg.batch_size)]
    fit(torch.stack([torch.as_tensor(train_data[int(i)][0]) for i in chunk]) for chunk in chunks)  # (B, samples) each


def _check_same_run(path: Path, state: dict, config: RunConfig) -> None:
    """Refuse another experiment's checkpoint; where a run executes (device, workers, folders) may change."""
    saved = state.get("config")
    if saved is None or RunConfig.from_dict(saved).config_hash() != config.config_hash():
        raise ValueError(f"{path}: this checkpoint belongs to another configuration; delete its folder or use the "
                         f"run's own checkpoint folder (saved {saved}, asked {config.to_dict()})")


def _check_same_processes(path: Path, state: dict, dist: DistInfo) -> None:
    """Refuse to continue an unfinished run with another number of processes than it started with.

    Each process's share of the patches and of the batch, its batch-norm statistics and its random
    draws depend on that number, so the resumed run would not end as the uninterrupted one.
    """
    saved = state.get("world_size", dist.world_size)  # checkpoints from before it was recorded: not checked
    if saved == dist.world_size or state["progress"]["finished"]:
        return
    how = "without torchrun" if saved == 1 else f"with torchrun --nproc_per_node (and --nnodes) giving {saved} processes"
    raise ValueError(f"{path}: this run was trained by {saved} process(es) and would resume with {dist.world_size}; "
                     f"resume it {how}, or delete its checkpoint folder to start again")


def _header(model: nn.Module, config: RunConfig, device: torch.device, amp: bool, dist: DistInfo, selection: str,
            train_data: Dataset, workers: int) -> str:
    """What the run is, and what one of its epochs is (patches drawn from the training clips, not the clips)."""
    n_train = len(train_data)
    cfg = config.train
    batch = f"batch {cfg.batch_size}"
    if dist.distributed:
        share = cfg.batch_size // dist.world_size
        batch += f" ({share} per process, batch norm over {cfg.batch_size if cfg.sync_batchnorm else share})"
    clips = getattr(train_data, "clips", n_train)
    epoch = (f"epochs of {n_train:,} random patches from {clips:,} training clips" if n_train != clips
             else f"epochs of one patch of each of {clips:,} training clips")
    return (f"model {config.model.model}: {count_params(model):,} parameters | config {config.config_hash()} | "
            f"device {describe(device, amp, dist)}, {workers} loader workers | {epoch}, {batch}, "
            f"early stopping on {selection} (patience {cfg.patience}, at most {cfg.max_epochs} epochs)")


# ---- progress a watcher can follow ----------------------------------------------------------------
PROGRESS = "progress.json"


def write_progress(folder: Path, event: dict) -> None:
    """``<checkpoint folder>/progress.json``: where the run stands, rewritten atomically after every epoch,
    so that ``study batch`` (or a user with ``cat``) can follow a run in another process without its log."""
    with atomic_open(folder / PROGRESS, "w") as stream:
        stream.write(json.dumps(event, sort_keys=True) + "\n")


def read_progress(folder: str | Path) -> dict | None:
    """The last :func:`write_progress` event of a checkpoint folder, or None where there is none (yet)."""
    try:
        return json.loads((Path(folder) / PROGRESS).read_text())
    except (OSError, ValueError):
        return None


def _progress_event(run: Progress, cfg: TrainConfig, selection: str, resumed_after: int, *,
                    started: bool = False) -> dict:
    """Every event says which epoch the run resumed after: a follower that polls may miss the start event."""
    last = run.history[-1] if run.history else {}
    return {"epoch": run.epoch, "max_epochs": cfg.max_epochs, "selection": selection, "best_metric": run.best_metric
            if run.best_epoch else None, "best_epoch": run.best_epoch, "finished": run.finished,
            "stop_reason": run.stop_reason, "epoch_seconds": last.get("seconds"), "patience": cfg.patience,
            "bad_epochs": run.bad_epochs, "resumed_after": resumed_after, "time": time.time(),
            "event": "start" if started else "epoch"}


def _epoch_line(record: dict[str, float], run: Progress, selection: str, cfg: TrainConfig) -> str:
    shown = [f"{key} {record[key]:.4f}" for key in ("train_loss", "valid_loss", "valid_roc_auc", "valid_pr_auc",
                                                     "valid_rmse") if not math.isnan(record[key])]
    ending = f"  -> stop: {run.stop_reason}" if run.finished else ""
    return (f"epoch {record['epoch']}/{cfg.max_epochs}  " + "  ".join(shown) + f"  lr {record['lr']:.2g}"
            f"  | best {selection} {run.best_metric:.4f} (epoch {run.best_epoch})  {record['seconds']:.1f} s{ending}")
