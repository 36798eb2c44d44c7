"""Training patches (random, reproducible per seed and epoch) and evaluation windows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from study.data.cache import AudioCache
from study.data.collection import Collection
from study.config import RunConfig
from study.data.patches import (RandomPatches, check_input_length, eval_windows, patch_length, seconds_to_samples,
                                window_starts, windows)

LENGTHS = {"short": 700, "exact": 1000, "long": 5000, "longer": 12345}
PATCH = 1000


def ramp(track_id: str, row: pd.Series) -> np.ndarray:
    """Sample j of a track is j + 1 (so a patch's content tells where it starts; 0 is padding)."""
    return np.arange(1, LENGTHS[track_id] + 1, dtype=np.float32)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> AudioCache:
    ids = list(LENGTHS)
    tracks = pd.DataFrame({"split": "train", "artist": "", "path": ""}, index=ids)
    labels = np.eye(len(ids), 3, dtype=np.float32)
    collection = Collection("ramps", tracks, ["a", "b", "c"], labels, ramp)
    return AudioCache.build(collection, tmp_path_factory.mktemp("cache"), workers=1, progress=False)


def patches(cache, seed=0) -> RandomPatches:
    ids = list(LENGTHS)
    return RandomPatches(cache, ids, np.eye(len(ids), 3), patch_samples=PATCH, seed=seed)


def test_patch_shapes_content_and_padding(cache):
    data = patches(cache)
    for index, track_id in enumerate(data.track_ids):
        waveform, labels = data[index]
        assert waveform.shape == (PATCH,) and waveform.dtype == torch.float32
        assert labels.shape == (3,) and labels.dtype == torch.float32
        assert labels.tolist() == np.eye(4, 3)[index].tolist()
        start = data.start(index)
        assert 0 <= start <= max(0, LENGTHS[track_id] - PATCH)
        stored = min(PATCH, LENGTHS[track_id])
        expected = np.zeros(PATCH, dtype=np.float32)
        expected[:stored] = np.arange(start + 1, start + stored + 1)
        np.testing.assert_array_equal(waveform.numpy(), expected)
    short, _ = data[0]
    assert short[699] == 700 and (short[700:] == 0).all()  # a 700-sample clip, zero-padded


def test_an_epoch_of_more_patches_draws_every_track_equally_with_fresh_starts(cache):
    ids = list(LENGTHS)
    one_pass = patches(cache, seed=5)
    longer = RandomPatches(cache, ids, np.eye(len(ids), 3), patch_samples=PATCH, seed=5, patches_per_epoch=10)
    for data in (one_pass, longer):
        data.set_epoch(2)
    assert len(one_pass) == 4 and len(longer) == 10 and longer.clips == 4
    # the first pass is the one-patch-per-track epoch, item for item
    for index in range(4):
        torch.testing.assert_close(longer[index][0], one_pass[index][0])
    # items 4 and 8 are track 0 again (labels tell), each from its own start
    assert [int(longer[i][1].argmax()) for i in (0, 4, 8)] == [0, 0, 0]
    assert len({longer.start(i) for i in (3, 7)}) == 2  # the long track drawn twice, at two starts
    with pytest.raises(ValueError, match="patches_per_epoch"):
        RandomPatches(cache, ids, np.eye(len(ids), 3), patch_samples=PATCH, patches_per_epoch=-1)


def test_patches_repeat_per_seed_and_epoch_and_change_between(cache):
    def starts(data, epoch):
        data.set_epoch(epoch)
        return [data.start(i) for i in range(len(data))]

    first, again, other_seed = patches(cache, seed=3), patches(cache, seed=3), patches(cache, seed=4)
    epoch0, epoch1 = starts(first, 0), starts(first, 1)
    assert epoch0 == starts(again, 0)  # a new dataset (a resumed run) draws the same patches
    assert starts(first, 0) == epoch0  # going back to an epoch gives its patches again
    assert epoch1[2:] != epoch0[2:]  # the long clips move between epochs
    assert starts(other_seed, 0)[2:] != epoch0[2:]
    assert epoch0[:2] == [0, 0]  # nothing to draw when the clip is no longer than a patch
    first.set_epoch(1)
    again.set_epoch(1)
    assert torch.equal(first[3][0], again[3][0])


def test_patch_starts_cover_the_clip(cache):
    data = patches(cache, seed=1)
    seen = []
    for epoch in range(300):
        data.set_epoch(epoch)
        seen.append(data.start(3))
    latest = LENGTHS["longer"] - PATCH
    assert min(seen) >= 0 and max(seen) <= latest
    assert min(seen) < 0.05 * latest and max(seen) > 0.95 * latest  # uniform over every start


def test_dataloader_workers_give_the_same_batches(cache):
    data = patches(cache, seed=7)
    data.set_epoch(2)
    in_process = [w for w, _ in DataLoader(data, batch_size=2)]
    two_workers = [w for w, _ in DataLoader(data, batch_size=2, num_workers=2)]
    assert all(torch.equal(a, b) for a, b in zip(in_process, two_workers)) and len(two_workers) == 2


def test_patches_refuse_bad_arguments(cache):
    with pytest.raises(ValueError, match=r"labels of shape \(3, 3\) do not match 4 track ids"):
        RandomPatches(cache, list(LENGTHS), np.zeros((3, 3)), patch_samples=PATCH, seed=0)
    with pytest.raises(KeyError, match="nope"):
        RandomPatches(cache, ["long", "nope"], np.zeros((2, 3)), patch_samples=PATCH, seed=0)
    with pytest.raises(ValueError, match="patch_samples must be positive"):
        RandomPatches(cache, ["long"], np.zeros((1, 3)), patch_samples=0, seed=0)


@pytest.mark.parametrize("n_samples, patch, hop, expected", [
    (12, 4, 4, [0, 4, 8]),  # non-overlapping when hop == patch
    (14, 4, 4, [0, 4, 8]),  # the trailing partial window is dropped
    (10, 4, 2, [0, 2, 4, 6]),  # overlapping
    (10, 4, 5, [0, 5]),  # gaps when hop > patch
    (4, 4, 4, [0]),
    (3, 4, 4, [0]),  # shorter than a patch: one (padded) window
    (0, 4, 4, [0]),
])
def test_window_starts(n_samples, patch, hop, expected):
    assert window_starts(n_samples, patch, hop) == expected


def test_window_counts_of_the_paper():
    assert len(window_starts(30 * 16000, seconds_to_samples(15), seconds_to_samples(15))) == 2  # 30 s preview
    assert len(window_starts(465_984, seconds_to_samples(3), seconds_to_samples(3))) == 9  # a 29.1 s MTT clip
    assert seconds_to_samples(3) == 48_000 and seconds_to_samples(15) == 240_000
    with pytest.raises(ValueError, match="hop_samples=0"):
        window_starts(10, 4, 0)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_windows_stack_the_slices(as_tensor):
    audio = np.arange(1, 15, dtype=np.float32)
    clip = torch.from_numpy(audio) if as_tensor else audio
    out = windows(clip, 4, 3)
    assert isinstance(out, torch.Tensor) == as_tensor and tuple(out.shape) == (4, 4)
    expected = np.stack([audio[s:s + 4] for s in window_starts(14, 4, 3)])
    np.testing.assert_array_equal(np.asarray(out), expected)
    short = windows(clip[:3], 4, 4)
    np.testing.assert_array_equal(np.asarray(short), [[1, 2, 3, 0]])
    with pytest.raises(ValueError, match=r"shape \(2, 7\)"):
        windows(clip.reshape(2, 7), 4, 4)


# ---- lengths: one owner ---------------------------------------------------------------------------
class Net:
    """The length interface of a model: ``min_samples`` and ``fixed_samples``."""

    def __init__(self, *, min_samples: int = 1, fixed_samples: int | None = None, name: str = "net") -> None:
        self.min_samples, self.fixed_samples, self.name = min_samples, fixed_samples, name


def test_patch_lengths_are_seconds_in_samples_checked_against_the_model():
    assert patch_length(Net(), 3.0, 16000) == 48_000
    with pytest.raises(ValueError, match=r"patch_seconds 3 at 16000 Hz: 48000 samples, shorter than the 177144 "
                                         r"samples waveform needs"):
        patch_length(Net(min_samples=177_144, name="waveform"), 3.0, 16000)
    baseline = Net(min_samples=59_049, fixed_samples=59_049, name="samplecnn")
    assert patch_length(baseline, 3.0, 16000) == 59_049  # a fixed-input baseline takes its own length
    with pytest.raises(ValueError, match="--patch-seconds 3 at 16000 Hz: 48000 samples, but samplecnn takes exactly"):
        patch_length(baseline, 3.0, 16000, source="--patch-seconds", exact=True)
    # a clip shorter than the patch is one window of itself, padded only up to the model's minimum
    assert patch_length(Net(min_samples=500), 1.0, 16000, clip_samples=3000) == 3000
    assert patch_length(Net(min_samples=500), 1.0, 16000, clip_samples=100) == 500
    with pytest.raises(ValueError, match="whole clip, but samplecnn takes exactly 59049 samples"):
        check_input_length(baseline, None, source="whole_clip true")


def test_evaluation_windows_of_a_config():
    cfg = RunConfig.from_flat("default", eval_patch_seconds=3.0, eval_hop_seconds=1.5)
    assert eval_windows(cfg, Net()) == {"patch_samples": 48_000, "hop_samples": 24_000, "whole_clip": False}
    # a fixed-input baseline keeps the configured ratio of hop to patch
    assert eval_windows(cfg, Net(fixed_samples=59_049))["hop_samples"] == round(59_049 / 2)
    with pytest.raises(ValueError, match="takes exactly"):
        eval_windows(cfg.with_overrides(whole_clip=True), Net(fixed_samples=59_049))
    assert eval_windows(cfg.with_overrides(whole_clip=True), Net())["whole_clip"] is True
