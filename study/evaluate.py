"""Song-level prediction (§4): the mean of a moving window's patch predictions over each clip.

"During prediction one aims to consider the whole song.  To this end, several predictions are
computed for a song (by a moving window of 15s) and then averaged" (§4).  The window length and
hop are parameters (15 s non-overlapping in the paper, 3 s on MagnaTagATune); a trailing partial
window is dropped.  ``whole_clip=True`` instead feeds each clip in one pass, the alternative the
paper leaves to future work.  Windows of several clips share a batch, so short clips still fill
the accelerator.  Predictions are sigmoid probabilities; the models return logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from study.data.patches import check_input_length, window_starts, windows
from study.device import DistInfo, autocast, cudnn_benchmark_off, gather_to_all, keep_freed_memory
from study.progress import progress_bar

AGGREGATION = "mean"  # of the windows' sigmoid probabilities (§4)


@dataclass(frozen=True)
class SongSet:
    """Clips scored at song level: how to read them, their labels, and the window protocol."""

    reader: Any  # an AudioCache (anything with .read(track_id)) or a callable track_id -> samples
    track_ids: Sequence[str]
    labels: np.ndarray  # (clips, tags)
    patch_samples: int
    hop_samples: int
    whole_clip: bool = False


def clip_reader(cache: Any) -> Callable[[str], np.ndarray]:
    """track_id -> float32 samples, from an AudioCache-like object or a plain function."""
    if hasattr(cache, "read"):
        return lambda track_id: cache.read(track_id)
    if callable(cache):
        return cache
    raise TypeError(f"cannot read clips from {type(cache).__name__}; "
                    f"expected an AudioCache or a callable track_id -> audio")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model  # DistributedDataParallel


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def clip_windows(audio: np.ndarray, *, patch_samples: int, hop_samples: int, whole_clip: bool,
                 min_samples: int = 1) -> np.ndarray:
    """One clip's model inputs, (n_windows, samples): moving-window patches, or the whole clip once."""
    audio = np.asarray(audio, dtype=np.float32)
    if whole_clip:
        padded = np.zeros(max(len(audio), min_samples), dtype=np.float32)  # too-short clips: zero-padded
        padded[:len(audio)] = audio
        return padded[None]  # (1, samples)
    return windows(audio, patch_samples, hop_samples)  # (n_windows, patch_samples)


@torch.inference_mode()
def _probabilities(model: nn.Module, batch: np.ndarray, device: torch.device, amp: bool) -> np.ndarray:
    waveform = torch.tensor(batch, device=device)  # (batch, samples), a copy: window views are read-only
    with autocast(device, amp):
        logits = model(waveform)  # (batch, tags)
    return torch.sigmoid(logits.float()).cpu().numpy()


def _batched(pieces: Iterator[tuple[int, np.ndarray]], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Regroup (clip index, windows) into batches of equal-length windows: (owners (B,), inputs (B, samples)).

    At most ``batch_size`` windows wait at any time: when that many are pending, every length
    group is sent (whole clips of unequal lengths then go in smaller batches).
    """
    pending: dict[int, list[tuple[int, np.ndarray]]] = {}  # window length -> [(clip, window)]
    waiting = 0
    for clip, clip_inputs in pieces:
        for window in clip_inputs:
            pending.setdefault(len(window), []).append((clip, window))
            waiting += 1
            if waiting == batch_size:
                yield from _flush(pending)
                waiting = 0
    yield from _flush(pending)


def _flush(pending: dict[int, list[tuple[int, np.ndarray]]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for group in pending.values():
        yield np.array([clip for clip, _ in group]), np.stack([window for _, window in group])
    pending.clear()


def predict_clips(model: nn.Module, cache: Any, track_ids: Sequence[str], *, patch_samples: int, hop_samples: int,
                  whole_clip: bool = False, device: torch.device | str | None = None, batch_size: int = 16,
                  amp: bool = False, progress: bool = False, return_windows: bool = False,
                  dist: DistInfo = DistInfo()):
    """Song-level sigmoid probabilities, (clips, tags): the mean over each clip's windows.

    ``cache`` is an AudioCache or a callable track_id -> samples.  With ``return_windows`` also
    returns the number of windows of each clip, (clips,), for the saved protocol.  Under torchrun
    (``dist`` of several processes, every one calling this) each process scores a contiguous share
    of the clips and every process returns all the scores, as one process would.
    """
    if not len(track_ids):
        raise ValueError("predict_clips: no track ids given")
    if batch_size < 1 or patch_samples < 1 or hop_samples < 1:
        raise ValueError(f"predict_clips needs positive batch_size, patch_samples and hop_samples; got "
                         f"{batch_size}, {patch_samples}, {hop_samples}")
    keep_freed_memory()
    net = _unwrap(model)
    check_input_length(net, None if whole_clip else patch_samples, source="evaluation window")
    device = _model_device(net) if device is None else torch.device(device)
    window_args = {"patch_samples": patch_samples, "hop_samples": hop_samples, "whole_clip": whole_clip}
    with cudnn_benchmark_off(whole_clip):  # whole clips of many lengths: no tuning per shape
        if not dist.distributed:
            scores, n_windows = _predict(net, clip_reader(cache), track_ids, **window_args, device=device,
                                         batch_size=batch_size, amp=amp, progress=progress)
        else:
            bounds = np.linspace(0, len(track_ids), dist.world_size + 1).round().astype(int)
            share = list(track_ids[bounds[dist.rank]:bounds[dist.rank + 1]])
            mine = _predict(net, clip_reader(cache), share, **window_args, device=device, batch_size=batch_size,
                            amp=amp, progress=progress) if share else None
            shares = [part for part in gather_to_all(dist, mine) if part is not None]  # in rank order
            scores = np.concatenate([part[0] for part in shares])
            n_windows = np.concatenate([part[1] for part in shares])
    return (scores, n_windows) if return_windows else scores


def _predict(net: nn.Module, read: Callable[[str], np.ndarray], track_ids: Sequence[str], *, patch_samples: int,
             hop_samples: int, whole_clip: bool, device: torch.device, batch_size: int, amp: bool,
             progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """(scores (clips, tags), windows per clip (clips,)) of ``track_ids`` in this process."""
    min_samples = getattr(net, "min_samples", 1)
    n_windows = np.zeros(len(track_ids), dtype=np.int64)

    def pieces() -> Iterator[tuple[int, np.ndarray]]:
        for clip, track_id in enumerate(progress_bar(track_ids, desc="predict", show=progress, leave=False)):
            inputs = clip_windows(read(track_id), patch_samples=patch_samples, hop_samples=hop_samples,
                                  whole_clip=whole_clip, min_samples=min_samples)
            n_windows[clip] = len(inputs)
            yield clip, inputs

    was_training = net.training
    net.eval()
    sums = None
    try:
        for owners, batch in _batched(pieces(), batch_size):
            probabilities = _probabilities(net, batch, device, amp)  # (batch, tags)
            if sums is None:
                sums = np.zeros((len(track_ids), probabilities.shape[1]), dtype=np.float64)
            np.add.at(sums, owners, probabilities)
    finally:
        net.train(was_training)
    return (sums / n_windows[:, None]).astype(np.float32), n_windows  # (clips, tags), (clips,)


def predict_windows(model: nn.Module, audio: np.ndarray, *, patch_samples: int, hop_samples: int,
                    device: torch.device | str | None = None, batch_size: int = 16, amp: bool = False) -> np.ndarray:
    """One clip's per-window probabilities, (n_windows, tags): the taggram behind its song-level mean."""
    keep_freed_memory()
    net = _unwrap(model)
    check_input_length(net, patch_samples, source="evaluation window")
    device = _model_device(net) if device is None else torch.device(device)
    inputs = windows(np.asarray(audio, dtype=np.float32), patch_samples, hop_samples)  # (n_windows, patch)
    was_training = net.training
    net.eval()
    try:
        rows = [_probabilities(net, inputs[i:i + batch_size], device, amp) for i in range(0, len(inputs), batch_size)]
    finally:
        net.train(was_training)
    return np.concatenate(rows)


def window_counts(lengths: Sequence[int], *, patch_samples: int, hop_samples: int, whole_clip: bool) -> np.ndarray:
    """How many windows each clip of these lengths gets, without reading any audio."""
    if whole_clip:
        return np.ones(len(lengths), dtype=np.int64)
    return np.array([len(window_starts(int(n), patch_samples, hop_samples)) for n in lengths], dtype=np.int64)


def protocol(*, patch_samples: int, hop_samples: int, whole_clip: bool, sample_rate: int,
             n_windows: np.ndarray | None = None, **extra: Any) -> dict[str, Any]:
    """The evaluation protocol saved with every result (protocol.json)."""
    record: dict[str, Any] = {
        "aggregation": "single pass" if whole_clip else AGGREGATION,
        "whole_clip": bool(whole_clip),
        "patch_samples": None if whole_clip else int(patch_samples),
        "hop_samples": None if whole_clip else int(hop_samples),
        "patch_seconds": None if whole_clip else patch_samples / sample_rate,
        "hop_seconds": None if whole_clip else hop_samples / sample_rate,
        "sample_rate": int(sample_rate),
        "trailing_partial_window": "dropped; a clip shorter than a patch gets one zero-padded window",
        "output": "sigmoid probabilities",
    }
    if n_windows is not None and len(n_windows):
        n_windows = np.asarray(n_windows)
        record["n_windows"] = {"min": int(n_windows.min()), "max": int(n_windows.max()),
                               "mean": float(n_windows.mean()), "total": int(n_windows.sum())}
    record.update(extra)
    return record
