"""Patches of cached audio: their lengths, random ones for training, a moving window for evaluation.

The paper trains on random patches (15 s; 3 s for MagnaTagATune) and predicts a song as the
mean of the predictions of a moving window of patches over it (§4).  The training code the
authors published steps the window by one patch (consecutive, non-overlapping patches) and
drops a trailing partial patch (docs/paper-details.md, "Training and evaluation").

This module is the one owner of patch and window lengths: seconds become samples here, and here
a model's input limits are checked (a fixed-input baseline takes exactly its length, every other
model at least its smallest input), before any audio is decoded.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from study.config import RunConfig
from study.data.cache import AudioCache


# ---- lengths ----------------------------------------------------------------------------------
def seconds_to_samples(seconds: float, sample_rate: int = 16000) -> int:
    """A patch length in samples (3 s -> 48,000 and 15 s -> 240,000 at 16 kHz)."""
    samples = int(round(seconds * sample_rate))
    if samples <= 0:
        raise ValueError(f"a patch of {seconds} s at {sample_rate} Hz has no samples; expected a positive length")
    return samples


def _unwrapped(model: Any) -> Any:
    return model.module if hasattr(model, "module") else model  # DistributedDataParallel


def check_input_length(model: Any, samples: int | None, *, source: str) -> None:
    """Refuse an input length ``model`` cannot take, naming where it came from and what the model needs.

    ``samples`` None stands for the whole clip in one pass.  A fixed-input baseline
    (``fixed_samples``) takes exactly its length and never the whole clip; every other model takes
    any length from its ``min_samples`` up.
    """
    net = _unwrapped(model)
    name = getattr(net, "name", type(net).__name__)
    fixed = getattr(net, "fixed_samples", None)
    minimum = getattr(net, "min_samples", 1)
    if fixed is not None and samples != fixed:
        given = "the whole clip" if samples is None else f"{samples} samples"
        raise ValueError(f"{source}: {given}, but {name} takes exactly {fixed} samples (a fixed-input model)")
    if samples is not None and samples < minimum:
        raise ValueError(f"{source}: {samples} samples, shorter than the {minimum} samples {name} needs")


def patch_length(model: Any, seconds: float, sample_rate: int, *, source: str = "patch_seconds",
                 exact: bool = False, clip_samples: int | None = None) -> int:
    """A patch length in samples that ``model`` can take: ``seconds`` at ``sample_rate``, checked.

    A fixed-input baseline takes its own length instead, unless ``exact`` (a length the user asked
    for by name, which must then equal it).  With ``clip_samples``, a clip shorter than the patch
    is one window of itself, padded only up to the model's smallest input.
    """
    samples = seconds_to_samples(seconds, sample_rate)
    net = _unwrapped(model)
    fixed = getattr(net, "fixed_samples", None)
    if fixed is not None and not exact:
        return int(fixed)
    if fixed is None and clip_samples is not None and clip_samples < samples:
        samples = max(int(clip_samples), getattr(net, "min_samples", 1))
    check_input_length(net, samples, source=f"{source} {seconds:g} at {sample_rate} Hz")
    return samples


def eval_windows(cfg: RunConfig, model: Any) -> dict[str, Any]:
    """The evaluation windows of ``cfg`` for ``model``, checked: patch_samples, hop_samples, whole_clip.

    eval_patch_seconds every eval_hop_seconds (§4: 15 s, non-overlapping), or the whole clip in one
    pass.  A fixed-input baseline takes its own patch and keeps the configured ratio of hop to patch.
    """
    rate, protocol = cfg.audio.sample_rate, cfg.eval
    fixed = getattr(_unwrapped(model), "fixed_samples", None)
    if protocol.whole_clip:
        check_input_length(model, None, source="whole_clip true")  # refuses a fixed-input model
        patch = seconds_to_samples(protocol.eval_patch_seconds, rate)  # each clip is then one window
    else:
        patch = patch_length(model, protocol.eval_patch_seconds, rate, source="eval_patch_seconds")
    if fixed is not None:
        hop = max(1, round(fixed * protocol.eval_hop_seconds / protocol.eval_patch_seconds))
    else:
        hop = seconds_to_samples(protocol.eval_hop_seconds, rate)
    return {"patch_samples": patch, "hop_samples": hop, "whole_clip": protocol.whole_clip}


# ---- training patches ---------------------------------------------------------------------------
class RandomPatches(Dataset):
    """Item i: a random ``patch_samples`` patch of track ``i % clips`` and its labels.

    An epoch has ``patches_per_epoch`` items (0: one per track, the authors' epoch), so a small
    training set can still see thousands of patches between two validations; every track is drawn
    equally often.  The start of item i is drawn from (seed, epoch, i) alone, so an epoch's patches
    are the same whatever the DataLoader's order or worker count, and a resumed run draws what the
    interrupted one would have.  Call :meth:`set_epoch` before iterating each epoch (DataLoader
    workers copy the dataset when an iteration starts, so do not use ``persistent_workers``).
    Clips shorter than a patch are zero-padded at the end.
    """

    def __init__(self, cache: AudioCache, track_ids: Sequence[str], labels: np.ndarray, *,
                 patch_samples: int, seed: int = 0, patches_per_epoch: int = 0) -> None:
        self.cache = cache
        self.track_ids = list(track_ids)
        self.labels = np.asarray(labels, dtype=np.float32)
        if self.labels.ndim != 2 or len(self.labels) != len(self.track_ids):
            raise ValueError(f"labels of shape {self.labels.shape} do not match {len(self.track_ids)} track ids; "
                             f"expected ({len(self.track_ids)}, n_tags)")
        if int(patch_samples) <= 0:
            raise ValueError(f"patch_samples must be positive, got {patch_samples}")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        missing = [t for t in self.track_ids if t not in cache]
        if missing:
            raise KeyError(f"{cache.directory}: {len(missing)} of the requested tracks are not in the cache, "
                           f"e.g. {missing[:5]}")
        if patches_per_epoch < 0:
            raise ValueError(f"patches_per_epoch must be >= 0 (0: one per track), got {patches_per_epoch}")
        self.patch_samples = int(patch_samples)
        self.patches_per_epoch = int(patches_per_epoch) or len(self.track_ids)
        self.seed = int(seed)
        self.epoch = 0
        self.lengths = np.array([cache.length(t) for t in self.track_ids], dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.patches_per_epoch

    @property
    def clips(self) -> int:
        return len(self.track_ids)

    def start(self, index: int) -> int:
        """The first sample of item ``index``'s patch in the current epoch."""
        latest_start = max(0, int(self.lengths[index % self.clips]) - self.patch_samples)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return int(rng.integers(0, latest_start + 1))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = index % self.clips
        audio = self.cache.read(self.track_ids[clip], self.start(index), self.patch_samples)
        waveform = np.zeros(self.patch_samples, dtype=np.float32)  # (patch_samples,)
        waveform[:len(audio)] = audio
        return torch.from_numpy(waveform), torch.from_numpy(self.labels[clip].copy())  # (patch,), (n_tags,)


# ---- evaluation windows -------------------------------------------------------------------------
def window_starts(n_samples: int, patch_samples: int, hop_samples: int) -> list[int]:
    """First samples of the evaluation windows: every ``hop_samples`` while a whole patch fits.

    A trailing partial window is dropped; a clip shorter than one patch still gets one window
    (zero-padded by :func:`windows`) so that every clip has a prediction.
    """
    if patch_samples <= 0 or hop_samples <= 0 or n_samples < 0:
        raise ValueError(f"window_starts needs n_samples >= 0 and positive patch and hop; got n_samples={n_samples}, "
                         f"patch_samples={patch_samples}, hop_samples={hop_samples}")
    if n_samples <= patch_samples:
        return [0]
    return list(range(0, n_samples - patch_samples + 1, hop_samples))


def windows(audio: np.ndarray | torch.Tensor, patch_samples: int, hop_samples: int) -> np.ndarray | torch.Tensor:
    """(samples,) -> (n_windows, patch_samples), the windows of :func:`window_starts`, same array type."""
    if audio.ndim != 1:
        raise ValueError(f"windows expects one clip of shape (samples,), got shape {tuple(audio.shape)}")
    n_windows = len(window_starts(len(audio), patch_samples, hop_samples))
    if isinstance(audio, torch.Tensor):
        if len(audio) < patch_samples:
            return torch.nn.functional.pad(audio, (0, patch_samples - len(audio)))[None]  # (1, patch)
        return audio.unfold(0, patch_samples, hop_samples)[:n_windows].contiguous()  # (n_windows, patch)
    audio = np.asarray(audio)
    if len(audio) < patch_samples:
        padded = np.zeros((1, patch_samples), dtype=audio.dtype)
        padded[0, :len(audio)] = audio
        return padded
    strided = np.lib.stride_tricks.sliding_window_view(audio, patch_samples)[::hop_samples]
    return strided[:n_windows].copy()  # (n_windows, patch), writable even when hop == patch
