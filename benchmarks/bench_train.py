"""Training throughput, tagging time and peak memory of every model.

For each model of the registry and each setup it prints training clips per second (one
forward + backward + Adam step on random patches, as training sees them), the seconds needed to
tag a 30 s song (moving window, non-overlapping patches, §4) and peak memory.  Setups:

    default    the 'default' preset (the laptop study): its capacity and patch length
    paper      the paper's basic configuration: x1 front-end, 512 filters / 500 units, 15 s patches
    paper-mtt  the same with MagnaTagATune's 3 s patches

Models with a fixed input (SampleCNN, VGG, ...) use their own input length in every setup.
Run: ``.venv/bin/python benchmarks/bench_train.py [--setups default,paper] [--models waveform,...]``.
"""
from __future__ import annotations

import argparse
import csv
import resource
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from study.config import RunConfig, preset_config
from study.device import amp_enabled, autocast, resolve_device
from study.evaluate import predict_windows
from study.models import MODELS, build_model, count_params

SONG_SECONDS = 30.0


@dataclass(frozen=True)
class Setup:
    name: str
    config: RunConfig
    patch_seconds: float  # training and tagging patch


def setups() -> dict[str, Setup]:
    default = preset_config("default")
    paper = preset_config("paper").with_overrides(frontend_multiplier=1.0, backend_filters=512, dense_units=500)
    return {
        "default": Setup("default", default, default.train.patch_seconds),
        "paper": Setup("paper", paper, 15.0),  # §4: 15 s patches
        "paper-mtt": Setup("paper-mtt", paper.with_overrides(patch_seconds=3.0, eval_patch_seconds=3.0), 3.0),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(model: torch.nn.Module, *, patch_samples: int, batch_size: int, n_tags: int, steps: int,
                     budget_seconds: float, device: torch.device) -> tuple[float, float]:
    """(clips per second, seconds per step) of forward + backward + Adam on random patches."""
    amp = amp_enabled(device, True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(0)
    model.train()

    def step() -> None:
        waveform = (0.1 * torch.randn(batch_size, patch_samples, generator=generator)).to(device)  # (batch, samples)
        labels = (torch.rand(batch_size, n_tags, generator=generator) < 0.1).float().to(device)  # (batch, tags)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            loss = loss_fn(model(waveform).float(), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step()  # warm-up: allocator, cuDNN algorithm choice, first-call overheads
    _sync(device)
    started, done = time.perf_counter(), 0
    while done < steps and (done == 0 or time.perf_counter() - started < budget_seconds):
        step()
        done += 1
    _sync(device)
    elapsed = time.perf_counter() - started
    return batch_size * done / elapsed, elapsed / done


def tagging_seconds(model: torch.nn.Module, *, patch_samples: int, sample_rate: int, device: torch.device) -> float:
    """Seconds to tag one 30 s song: decode excluded, windows + forward passes + mean included."""
    song = (0.1 * np.random.default_rng(0).standard_normal(int(SONG_SECONDS * sample_rate))).astype(np.float32)
    model.eval()
    predict_windows(model, song, patch_samples=patch_samples, hop_samples=patch_samples, device=device)  # warm-up
    timings = []
    for _ in range(3):
        _sync(device)
        started = time.perf_counter()
        predict_windows(model, song, patch_samples=patch_samples, hop_samples=patch_samples, device=device)
        _sync(device)
        timings.append(time.perf_counter() - started)
    return float(np.median(timings))


def decode_seconds(sample_rate: int = 16000) -> float:
    """Seconds to decode a 30 s 44.1 kHz stereo mp3 to 16 kHz mono (study.audio.load_audio), median of 3."""
    import tempfile
    from pathlib import Path

    import soundfile

    from study.audio import load_audio

    noise = 0.1 * np.random.default_rng(0).standard_normal((int(SONG_SECONDS * 44100), 2))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "song.mp3"
        soundfile.write(path, noise.astype(np.float32), 44100)
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            load_audio(path, sample_rate)
            timings.append(time.perf_counter() - started)
    return float(np.median(timings))


def bench_one(setup: Setup, model_name: str, args: argparse.Namespace, device: torch.device) -> dict:
    cfg = setup.config.with_overrides(model=model_name)
    sample_rate = cfg.audio.sample_rate
    model = build_model(cfg.model, n_tags=args.n_tags, audio_cfg=cfg.audio).to(device)
    patch_samples = model.fixed_samples or int(round(setup.patch_seconds * sample_rate))
    # batch 32, fewer where one batch would hold more audio than --max-batch-seconds (big patches on a CPU)
    batch_size = max(1, min(args.batch_size, int(args.max_batch_seconds * sample_rate // patch_samples)))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    clips_per_second, step_seconds = train_throughput(
        model, patch_samples=patch_samples, batch_size=batch_size, n_tags=args.n_tags, steps=args.steps,
        budget_seconds=args.budget_seconds, device=device)
    tag_seconds = tagging_seconds(model, patch_samples=patch_samples, sample_rate=sample_rate, device=device)
    return {
        "setup": setup.name, "model": model_name, "params": count_params(model),
        "patch_s": round(patch_samples / sample_rate, 3), "batch": batch_size,
        "train_clips_per_s": round(clips_per_second, 2), "step_s": round(step_seconds, 3),
        "tag_30s_song_s": round(tag_seconds, 3), "peak_rss_mb": round(peak_rss_mb()),
        "cuda_peak_mb": round(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", default="default,paper,paper-mtt", help="comma-separated: " + ", ".join(setups()))
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-batch-seconds", type=float, default=None,
                        help="cap on audio per batch (default: 128 s on CPU, none on a GPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 3 on CPU, 20 on a GPU)")
    parser.add_argument("--budget-seconds", type=float, default=60.0, help="stop timing a case after this long")
    parser.add_argument("--n-tags", type=int, default=50, help="outputs (50 for MTT and MSD)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    on_gpu = device.type != "cpu"
    args.steps = args.steps or (20 if on_gpu else 3)
    args.max_batch_seconds = args.max_batch_seconds or (float("inf") if on_gpu else 128.0)
    chosen = [setups()[name] for name in args.setups.split(",")]
    names = args.models.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; expected some of {list(MODELS)}")

    threads = f"{device} ({torch.get_num_threads()} threads)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else threads
    print(f"device: {name}; torch {torch.__version__}; {args.steps} timed steps per case")
    print(f"decoding a 30 s 44.1 kHz stereo mp3 to 16 kHz mono: {decode_seconds():.3f} s "
          f"(add it to tag_30s_song_s, which starts from decoded audio)")
    rows = []
    for setup in chosen:
        for model_name in names:
            try:
                row = bench_one(setup, model_name, args, device)
            except (RuntimeError, ValueError) as error:  # e.g. out of memory: report and go on
                print(f"{setup.name:<10} {model_name:<12} failed: {type(error).__name__}: {error}", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            rows.append(row)
            print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if rows:
        columns = list(rows[0])
        widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
        print("\n" + "  ".join(c.rjust(widths[c]) for c in columns))
        for row in rows:
            print("  ".join(str(row[c]).rjust(widths[c]) for c in columns))
        if args.csv:
            with open(args.csv, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
