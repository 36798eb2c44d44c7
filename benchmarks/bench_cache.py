"""Can the cache feed the models?  Patches read per second beside clips consumed per second.

Builds a cache of synthetic 30 s clips in a temporary folder, reads random 3 s (MTT) and 15 s
(§4) patches through a torch DataLoader with 0 and 2 workers, and times forward+backward of the
paper's two models at batch 32 on this CPU.  Run: ``.venv/bin/python benchmarks/bench_cache.py``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from study.config import AudioConfig, ModelConfig
from study.data.cache import AudioCache
from study.data.collection import Collection
from study.data.patches import RandomPatches, seconds_to_samples


class SyntheticLoader:
    """Picklable: a chord plus noise, different per clip (the cache does not care what it holds)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, track_id: str, row: pd.Series) -> np.ndarray:
        rng = np.random.default_rng(int(track_id))
        t = np.arange(int(self.seconds * 16000)) / 16000
        chord = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 1000, size=3))
        return (0.1 * chord + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def synthetic_collection(clips: int, seconds: float) -> Collection:
    ids = [str(k) for k in range(clips)]
    tracks = pd.DataFrame({"split": "train", "artist": "", "path": ""}, index=ids)
    labels = np.random.default_rng(0).random((clips, 50)) < 0.1
    return Collection("bench", tracks, [f"tag{j}" for j in range(50)], labels, SyntheticLoader(seconds))


def patches_per_second(cache: AudioCache, collection: Collection, patch_seconds: float, workers: int,
                       batch_size: int, epochs: int) -> float:
    data = RandomPatches(cache, cache.track_ids, collection.label_rows(cache.track_ids),
                         patch_samples=seconds_to_samples(patch_seconds), seed=0)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    began, count = time.perf_counter(), 0
    for epoch in range(epochs):
        data.set_epoch(epoch)
        for waveform, _ in loader:
            count += len(waveform)
    return count / (time.perf_counter() - began)


def clips_per_second(model_name: str, patch_seconds: float, batch_size: int, steps: int) -> float:
    from study.models import build_model  # written by the models helper

    model = build_model(ModelConfig(model=model_name), n_tags=50, audio_cfg=AudioConfig())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    samples = seconds_to_samples(patch_seconds)

    def step(batch: int) -> None:
        waveform, target = torch.randn(batch, samples) * 0.1, (torch.rand(batch, 50) < 0.1).float()
        optimizer.zero_grad()
        loss_fn(model(waveform), target).backward()
        optimizer.step()

    model.train()
    step(2)  # warm-up: allocations and kernel selection
    began = time.perf_counter()
    for _ in range(steps):
        step(batch_size)
    return steps * batch_size / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2, help="passes over the clips per reading measurement")
    parser.add_argument("--model_steps", type=int, default=1, help="timed training steps per model (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    collection = synthetic_collection(args.clips, args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench_cache_") as folder:
        began = time.perf_counter()
        cache = AudioCache.build(collection, Path(folder), workers=2, progress=False)
        build_s = time.perf_counter() - began
        audio_s = args.clips * args.seconds
        size = (Path(folder) / "samples.raw").stat().st_size / 2**20
        print(f"cache build: {args.clips} clips x {args.seconds:g} s, 2 workers, {build_s:.1f} s "
              f"({args.clips / build_s:.1f} clips/s, {audio_s / build_s:.0f}x real time), {size:.0f} MiB float32")
        print(f"\nreading random patches, batch {args.batch_size}, {args.epochs} epochs (page cache warm, "
              f"{os.cpu_count()} CPUs shared)")
        print(f"{'patch':>6} {'loader workers':>15} {'patches/s':>10} {'audio x real time':>18}")
        for patch_seconds in (3.0, 15.0):
            for workers in (0, 2):
                rate = patches_per_second(cache, collection, patch_seconds, workers, args.batch_size, args.epochs)
                print(f"{patch_seconds:>5g}s {workers:>15} {rate:>10.0f} {rate * patch_seconds:>18.0f}")

    if args.model_steps <= 0:
        return
    print(f"\nmodels, forward+backward+Adam step, batch {args.batch_size}, {args.threads} torch thread(s)")
    print(f"{'model':>12} {'patch':>6} {'clips/s':>8}")
    for model_name in ("waveform", "spectrogram"):
        for patch_seconds in (3.0, 15.0):
            rate = clips_per_second(model_name, patch_seconds, args.batch_size, args.model_steps)
            print(f"{model_name:>12} {patch_seconds:>5g}s {rate:>8.2f}")


if __name__ == "__main__":
    main()
