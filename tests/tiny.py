"""Stand-ins for the training and evaluation tests: a one-convolution tagger, tiny synthetic clips
whose tags are audible to it ('loud' scales the noise, 'offset' adds a DC offset, the regression tag
'brightness' mixes in a high-frequency tone), and an in-memory cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from study.config import RunConfig, TrainConfig
from study.data.patches import RandomPatches
from study.evaluate import SongSet
from study.train import train

TAGS = ["loud", "offset", "quiet", "brightness"]
REGRESSION = np.array([False, False, False, True])
CLIP_SAMPLES = 800
PATCH_SAMPLES = 200


class TinyTagger(nn.Module):
    """The model interface (logits, min_samples, fixed_samples, fit_input_stats, embed) in one conv."""

    def __init__(self, n_tags: int, *, channels: int = 6, batch_norm: bool = True, dropout: float = 0.2) -> None:
        super().__init__()
        self.min_samples, self.fixed_samples = 16, None
        self.conv = nn.Conv1d(1, channels, kernel_size=8, stride=4)
        self.norm = nn.BatchNorm1d(channels) if batch_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)  # draws from torch's generator: resume must restore it
        self.dense = nn.Linear(2 * channels, n_tags)
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))

    @torch.no_grad()
    def fit_input_stats(self, waveforms) -> None:
        batch = torch.cat([w.reshape(-1) for w in waveforms])
        self.input_mean.fill_(float(batch.mean()))
        self.input_std.fill_(float(batch.std()))

    def embed(self, waveform: torch.Tensor) -> torch.Tensor:
        x = ((waveform - self.input_mean) / self.input_std)[:, None]  # (B, 1, samples)
        x = self.norm(torch.relu(self.conv(x)))  # (B, channels, steps)
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)  # (B, 2 channels)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.dense(self.dropout(self.embed(waveform)))  # (B, tags) logits


def tiny_model(seed: int = 0, **kwargs) -> TinyTagger:
    torch.manual_seed(seed)
    return TinyTagger(len(TAGS), **kwargs)


def synthetic_clip(index: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(audio (CLIP_SAMPLES,), labels (4,)) of clip ``index``; the same for the same (index, seed)."""
    rng = np.random.default_rng([seed, index])
    loud, offset = rng.random() < 0.4, rng.random() < 0.4
    brightness = rng.random()
    time = np.arange(CLIP_SAMPLES)
    audio = rng.normal(0, rng.uniform(0.4, 0.7) * (1.6 if loud else 1.0), CLIP_SAMPLES) + (0.3 if offset else 0.0)
    audio += brightness * np.sin(2.9 * time)
    labels = np.array([loud, offset, not loud, brightness], dtype=np.float32)
    return audio.astype(np.float32), labels


class MemoryCache:
    """The AudioCache read interface over a dict; ``fail_after`` reads it raises, like a killed process."""

    def __init__(self, clips: dict[str, np.ndarray]) -> None:
        self.clips, self.directory, self.reads, self.fail_after = clips, Path("memory"), 0, None

    def __contains__(self, track_id: object) -> bool:
        return track_id in self.clips

    def length(self, track_id: str) -> int:
        return len(self.clips[track_id])

    def read(self, track_id: str, start: int = 0, length: int | None = None) -> np.ndarray:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        stop = len(self.clips[track_id]) if length is None else start + length
        return self.clips[track_id][start:stop].copy()


def tiny_data(n_train: int = 48, n_valid: int = 16, seed: int = 0):
    """(MemoryCache, train ids, train labels, valid ids, valid labels)."""
    clips, labels = {}, {}
    for index in range(n_train + n_valid):
        clips[f"t{index}"], labels[f"t{index}"] = synthetic_clip(index, seed)
    ids = list(clips)
    train_ids, valid_ids = ids[:n_train], ids[n_train:]
    return (MemoryCache(clips), train_ids, np.stack([labels[t] for t in train_ids]),
            valid_ids, np.stack([labels[t] for t in valid_ids]))


TINY_TRAIN = TrainConfig(seed=3, batch_size=8, learning_rate=0.03, max_epochs=4, patience=10, patch_seconds=1.0,
                         device="cpu", norm_clips=16, early_stopping="auto")


def run_tiny(checkpoint_dir: Path, cfg: TrainConfig | RunConfig = TINY_TRAIN, *, model: nn.Module | None = None,
             data=None, log=lambda line: None, **kwargs):
    """Train the tiny tagger; ``cfg`` is the run's whole config or only its training section."""
    config = cfg if isinstance(cfg, RunConfig) else RunConfig(train=cfg)
    cache, train_ids, train_labels, valid_ids, valid_labels = data or tiny_data()
    patches = RandomPatches(cache, train_ids, train_labels, patch_samples=PATCH_SAMPLES, seed=config.train.seed)
    valid = SongSet(reader=cache, track_ids=valid_ids, labels=valid_labels, patch_samples=PATCH_SAMPLES,
                    hop_samples=PATCH_SAMPLES)
    return train(model or tiny_model(), patches, valid=valid, config=config, checkpoint_dir=checkpoint_dir, tags=TAGS,
                 is_regression=REGRESSION, progress=False, log=log, **kwargs)
