"""Patches of cached audio: random ones for training, a moving window for evaluation.

The paper trains on random patches (15 s; 3 s for MagnaTagATune) and predicts a song as the
mean of the predictions of a moving window of patches over it (§4).  The training code the
authors published steps the window by one patch (consecutive, non-overlapping patches) and
drops a trailing partial patch (paper-facts: "Training and evaluation").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from study.data.cache import AudioCache


def seconds_to_samples(seconds: float, sample_rate: int = 16000) -> int:
    """A patch length in samples (3 s -> 48,000 and 15 s -> 240,000 at 16 kHz)."""
    samples = int(round(seconds * sample_rate))
    if samples <= 0:
        raise ValueError(f"a patch of {seconds} s at {sample_rate} Hz has no samples; expected a positive length")
    return samples


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
