"""Song-level prediction: the mean of moving-window probabilities, batched across clips, or one pass."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from study.data.patches import check_input_length
from study.evaluate import predict_clips, predict_windows, protocol, window_counts

from tests.tiny import MemoryCache

pytestmark = pytest.mark.usefixtures("one_thread")


class WindowMean(nn.Module):
    """Logits [mean, -mean] of each input window: song scores are computable by hand."""

    min_samples, fixed_samples = 4, None

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        mean = waveform.mean(dim=1) + self.anchor  # (B,)
        return torch.stack([mean, -mean], dim=1)  # (B, 2)


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, dtype=np.float64)))


@pytest.fixture
def clips():
    """Clips made of constant segments of 10 samples, of different lengths."""
    return {
        "a": np.repeat([1.0, -2.0, 0.5], 10).astype(np.float32),  # 30 samples: three windows of 10
        "b": np.repeat([3.0, 0.0, 0.0, 1.0, 2.0], 10).astype(np.float32),  # 50 samples: five
        "c": np.repeat([0.7], 25).astype(np.float32),  # 25 samples: two windows, trailing 5 dropped
        "d": np.full(6, 2.0, dtype=np.float32),  # shorter than a patch: one zero-padded window
    }


def expected_scores(segment_means: list[float]) -> np.ndarray:
    p = sigmoid(segment_means)
    return np.array([p.mean(), (1 - p).mean()])


def test_a_clip_score_is_the_mean_of_its_window_probabilities(clips):
    scores = predict_clips(WindowMean(), MemoryCache(clips), list(clips), patch_samples=10, hop_samples=10)
    expected = np.stack([expected_scores([1.0, -2.0, 0.5]), expected_scores([3, 0, 0, 1, 2]),
                         expected_scores([0.7, 0.7]), expected_scores([2.0 * 6 / 10])])
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_batching_windows_across_clips_changes_nothing(clips):
    one = predict_clips(WindowMean(), MemoryCache(clips), list(clips), patch_samples=10, hop_samples=10, batch_size=1)
    many = predict_clips(WindowMean(), clips.__getitem__, list(clips), patch_samples=10, hop_samples=10, batch_size=7)
    np.testing.assert_allclose(one, many, rtol=1e-6)


def test_overlapping_windows_and_their_counts(clips):
    scores, counts = predict_clips(WindowMean(), MemoryCache(clips), list(clips), patch_samples=10, hop_samples=5,
                                   return_windows=True)
    np.testing.assert_array_equal(counts, [5, 9, 4, 1])
    lengths = [len(clip) for clip in clips.values()]
    np.testing.assert_array_equal(window_counts(lengths, patch_samples=10, hop_samples=5, whole_clip=False), counts)
    # clip a with hop 5: windows at 0, 5, 10, 15, 20 -> means 1, -0.5, -2, -0.75, 0.5
    np.testing.assert_allclose(scores[0], expected_scores([1.0, -0.5, -2.0, -0.75, 0.5]), rtol=1e-6)


def test_whole_clip_prediction_is_one_pass_over_each_clip(clips):
    scores, counts = predict_clips(WindowMean(), MemoryCache(clips), list(clips), patch_samples=10, hop_samples=10,
                                   whole_clip=True, batch_size=4, return_windows=True)
    np.testing.assert_array_equal(counts, [1, 1, 1, 1])
    means = [clips["a"].mean(), clips["b"].mean(), clips["c"].mean(), 2.0 * 6 / 6]  # 'd' is longer than min_samples
    np.testing.assert_allclose(scores[:, 0], sigmoid(means), rtol=1e-6)


def test_prediction_leaves_the_model_in_its_training_mode(clips):
    model = WindowMean().train()
    predict_clips(model, MemoryCache(clips), ["a"], patch_samples=10, hop_samples=10)
    assert model.training


def test_windows_a_model_cannot_take_are_refused():
    model = WindowMean()
    with pytest.raises(ValueError, match="shorter than the 4 samples"):
        check_input_length(model, 3, source="evaluation window")
    model.fixed_samples = 10
    with pytest.raises(ValueError, match="exactly 10 samples"):
        check_input_length(model, None, source="whole-clip prediction")
    with pytest.raises(ValueError, match="exactly 10 samples"):
        check_input_length(model, 12, source="evaluation window")


def test_a_reader_must_read():
    with pytest.raises(TypeError, match="AudioCache or a callable"):
        predict_clips(WindowMean(), 42, ["a"], patch_samples=10, hop_samples=10)


def test_predict_windows_gives_the_taggram(clips):
    taggram = predict_windows(WindowMean(), clips["b"], patch_samples=10, hop_samples=10, batch_size=2)
    assert taggram.shape == (5, 2)
    np.testing.assert_allclose(taggram[:, 0], sigmoid([3, 0, 0, 1, 2]), rtol=1e-6)


def test_the_protocol_record_names_windows_and_aggregation():
    record = protocol(patch_samples=240_000, hop_samples=240_000, whole_clip=False, sample_rate=16000,
                      n_windows=np.array([1, 2, 1]))
    assert record["patch_seconds"] == 15.0 and record["aggregation"] == "mean"
    assert record["n_windows"] == {"min": 1, "max": 2, "mean": pytest.approx(4 / 3), "total": 4}
    whole = protocol(patch_samples=240_000, hop_samples=240_000, whole_clip=True, sample_rate=16000)
    assert whole["patch_samples"] is None and whole["aggregation"] == "single pass"


def test_batches_never_hold_more_than_batch_size_windows_of_unequal_clips():
    from study.evaluate import _batched

    pieces = [(clip, np.zeros((1, 10 + clip), dtype=np.float32)) for clip in range(5)]  # 5 lengths
    batches = list(_batched(iter(pieces), 2))
    assert max(len(owners) for owners, _ in batches) <= 2
    assert sorted(int(c) for owners, _ in batches for c in owners) == [0, 1, 2, 3, 4]
    assert all(inputs.shape[1] == 10 + owners[0] for owners, inputs in batches)
