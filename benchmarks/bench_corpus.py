"""Embedded-corpus speed: audio generation (times real time per core) and tag-table build time.

    .venv/bin/python benchmarks/bench_corpus.py                 # 20 clips of 30 s, tables of 100k and 1M
    .venv/bin/python benchmarks/bench_corpus.py --clips 5 --table-sizes 10000

Issue 3 asks for >= 100x real time per core (a 30 s clip in <= 0.3 s of one core), so that
10,000 clips take minutes.  CPU time of this process is measured (``time.process_time``) with
one BLAS/FFT thread, so a busy shared machine does not distort the per-core figure; wall time
is printed beside it.
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from study.data.corpus.loader import corpus_table  # noqa: E402
from study.data.corpus.plan import plan_clips, plan_row  # noqa: E402
from study.data.corpus.render import render_clip  # noqa: E402
from study.data.splits import artist_filtered_split, nested_train_order  # noqa: E402


def _timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bench_audio(clips: int, seconds: float, seed: int, first_index: int) -> None:
    plans = plan_clips(seed, np.arange(first_index, first_index + clips + 1))
    _, cold_wall, cold_cpu = _timed(render_clip, plan_row(plans, 0), seconds)
    walls, cpus = [], []
    for i in range(1, clips + 1):
        _, wall, cpu = _timed(render_clip, plan_row(plans, i), seconds)
        walls.append(wall)
        cpus.append(cpu)
    cpus = np.array(cpus)
    print(f"audio: {clips} clips of {seconds:g} s at 16 kHz (seed {seed}, clips {first_index + 1}..{first_index + clips})")
    print(f"  first clip, empty note caches: {cold_cpu:.3f} s CPU ({seconds / cold_cpu:.0f}x real time)")
    print(f"  per clip: mean {cpus.mean():.3f} s CPU, median {np.median(cpus):.3f}, max {cpus.max():.3f} "
          f"(wall mean {np.mean(walls):.3f} s)")
    print(f"  speed: {seconds * clips / cpus.sum():.0f}x real time per core "
          f"(10,000 clips: {10_000 * cpus.mean() / 60:.1f} min on one core)")


def bench_table(size: int, seed: int, splits: bool) -> None:
    (tracks, labels), wall, cpu = _timed(corpus_table, seed, size)
    print(f"tag table: {size:,} clips in {wall:.1f} s wall ({cpu:.1f} s CPU), labels {labels.nbytes / 2**20:.0f} MiB")
    if splits:
        split, wall, _ = _timed(artist_filtered_split, tracks, labels, seed=seed)
        train = (split == "train").to_numpy()
        _, order_wall, _ = _timed(nested_train_order, tracks.index[train], labels[train], seed=seed)
        print(f"  artist-filtered split {wall:.1f} s, nested train order {order_wall:.1f} s "
              f"({tracks['artist'].nunique():,} artists)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-index", type=int, default=1000)
    parser.add_argument("--table-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--no-splits", action="store_true", help="time the tag table only")
    args = parser.parse_args()
    bench_audio(args.clips, args.seconds, args.seed, args.first_index)
    for size in args.table_sizes:
        bench_table(size, args.seed, not args.no_splits)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"peak memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
