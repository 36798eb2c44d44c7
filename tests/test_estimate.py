"""study.estimate and `study batch --dry-run`: wall-time estimates from the stored runs' epochs and epoch times."""
from __future__ import annotations

import os
import numpy as np
import pandas as pd
import pytest

from study import results
from study.batch import dry_run
from study.config import RunConfig
from study.estimate import (START_SECONDS, _stored_epochs, estimate, expected_epochs, job_threads, measured_epoch,
                            throughput, wall_seconds)


def store(results_dir, cfg: RunConfig, epochs: int, *, trained: bool = True) -> None:
    results.write_run(results_dir, cfg.run_id, config=cfg.to_dict(), metrics={"overall": {}, "n_test": 1},
                      per_tag=pd.DataFrame({"tag": ["a"]}), curve=None, protocol={"training": {"epochs": epochs}},
                      provenance={"timings": {"train": 60.0} if trained else {"test": 5.0}}, predictions={"track_ids": ["t"], "y_true": [[1.0]], "y_score": [[0.5]],
                                                  "tags": ["a"], "is_regression": [False]})


def test_expected_epochs_come_from_like_runs_then_the_nearest_sizes_then_the_cap(tmp_path):
    for seed, epochs in enumerate((4, 6, 11)):
        store(tmp_path, RunConfig.from_flat("smoke", model="waveform", train_size=20, seed=seed), epochs)
    store(tmp_path, RunConfig.from_flat("smoke", model="waveform", train_size=60, seed=0), 9)
    stored = _stored_epochs(tmp_path)
    assert expected_epochs(RunConfig.from_flat("smoke", model="waveform", train_size=20, seed=7), stored)[0] == 6
    epochs, basis = expected_epochs(RunConfig.from_flat("smoke", model="waveform", train_size=50, max_epochs=100),
                                   stored)
    assert epochs == pytest.approx(6 + 3 * np.log(50 / 20) / np.log(3)) and basis == (
        "interpolated from stored runs at 20 and 60 clips")  # medians 6 and 9, on a log scale of clips
    epochs, basis = expected_epochs(RunConfig.from_flat("smoke", model="waveform", train_size=180, max_epochs=100),
                                   stored)
    assert epochs == pytest.approx(12) and basis.startswith("extrapolated")  # 3 more epochs per factor of 3
    huge = RunConfig.from_flat("smoke", model="waveform", train_size=10**9, max_epochs=30)
    assert expected_epochs(huge, stored)[0] == huge.train.max_epochs  # never past the cap
    capped = RunConfig.from_flat("smoke", model="spectrogram", train_size=20)
    assert expected_epochs(capped, stored)[0] == capped.train.max_epochs
    assert "upper bound" in expected_epochs(capped, stored)[1]
    other_schedule = RunConfig.from_flat("smoke", model="waveform", train_size=20, patience=7)
    assert "upper bound" in expected_epochs(other_schedule, stored)[1]  # another schedule says nothing
    other_loss = RunConfig.from_flat("smoke", model="waveform", train_size=20, loss="mse")
    assert expected_epochs(other_loss, stored) == (6.0, "median of 3 stored run(s) with another loss")
    assert "upper bound" in expected_epochs(other_loss.with_overrides(train_size=30), stored)[1]  # nor another size
    store(tmp_path, RunConfig.from_flat("smoke", model="spectrogram", train_size=60, seed=0), 5)
    alone = expected_epochs(RunConfig.from_flat("smoke", model="spectrogram", train_size=20), _stored_epochs(tmp_path))
    assert alone == (5.0, "stored runs at 60 clips")  # one stored size: its median


def test_throughput_is_measured_and_positive():
    speed = throughput(RunConfig.from_flat("smoke", model="spectrogram"), 5, steps=1)
    assert speed["train_patches_per_s"] > 0 and speed["windows_per_s"] > speed["train_patches_per_s"] / 10


def test_dry_run_lists_every_point_and_runs_nothing(tmp_path, capsys):
    assert dry_run("grids/smoke.yaml", results_dir=tmp_path / "results", jobs=2) == 0
    out = capsys.readouterr().out
    assert "5 points, 0 stored, 5 to run" in out and "min with 2 job(s)" in out
    assert not (tmp_path / "results").exists()  # nothing was trained or written


def store_timed(results_dir, cfg: RunConfig, *, epochs: int, epoch_seconds: float, threads: int, created: str,
                test_seconds: float = 10.0) -> None:
    curve = pd.DataFrame({"epoch": range(1, epochs + 1), "seconds": [epoch_seconds] * epochs})
    results.write_run(results_dir, cfg.run_id, config=cfg.to_dict(), metrics={"overall": {}, "n_test": 1},
                      per_tag=pd.DataFrame({"tag": ["a"]}), curve=curve, protocol={"training": {"epochs": epochs}},
                      provenance={"hardware": {"torch_threads": threads, "cpu_count": os.cpu_count(), "cuda": False},
                                  "timings": {"train": epochs * epoch_seconds, "test": test_seconds},
                                  "created": created},
                      predictions={"track_ids": ["t"], "y_true": [[1.0]], "y_score": [[0.5]], "tags": ["a"],
                                   "is_regression": [False]})


def test_epoch_times_come_from_the_latest_runs_of_the_front_end_at_the_same_threads(tmp_path):
    wave = RunConfig.from_flat("smoke", model="waveform", train_size=20)
    old_code = [(0, 90.0, "2026-11-01T00:00:00"), (1, 88.0, "2026-11-02T00:00:00"), (2, 86.0, "2026-11-03T00:00:00")]
    new_code = [(3, 30.0, "2026-12-01T00:00:00"), (4, 32.0, "2026-12-02T00:00:00"), (5, 31.0, "2026-12-03T00:00:00")]
    for seed, seconds, created in old_code + new_code:
        store_timed(tmp_path, wave.with_overrides(seed=seed), epochs=10, epoch_seconds=seconds, threads=1,
                    created=created)
    store_timed(tmp_path, wave.with_overrides(seed=9), epochs=10, epoch_seconds=15.0, threads=2,
                created="2026-12-04T00:00:00")  # another jobs setting
    store_timed(tmp_path, RunConfig.from_flat("smoke", model="spectrogram", seed=0), epochs=10, epoch_seconds=50.0,
                threads=1, created="2026-12-05T00:00:00")  # another front-end
    rescored = RunConfig.from_flat("smoke", model="waveform", train_size=20, seed=8, whole_clip=True)
    store(tmp_path, rescored, 10, trained=False)  # study evaluate's run of a trained checkpoint: no training time, not counted
    stored = _stored_epochs(tmp_path)
    assert len(stored) == 8
    per_epoch, test, basis = measured_epoch(wave.with_overrides(seed=7), stored, threads=1)
    assert per_epoch == 31.0 and test == 10.0 and "3 latest run(s) at 1 thread(s)" == basis
    assert measured_epoch(wave, stored, threads=2)[0] == 15.0
    assert measured_epoch(wave.with_overrides(batch_size=4), stored, threads=1) is None  # other epochs: no basis


def test_a_grid_estimate_is_epochs_times_the_measured_epoch_and_fills_the_slots(tmp_path):
    from study.batch import load_collections

    wave = RunConfig.from_flat("smoke", model="waveform", train_size=20)
    for seed in range(3):
        store_timed(tmp_path, wave.with_overrides(seed=seed), epochs=12, epoch_seconds=30.0,
                    threads=job_threads(2), created=f"2026-12-0{seed + 1}T00:00:00")
    todo = [wave.with_overrides(seed=seed) for seed in (5, 6, 7)]
    table, wall = estimate(todo, load_collections(todo), results_dir=tmp_path, jobs=2)
    assert list(table["seconds"]) == [START_SECONDS + 12 * 30.0 + 10.0] * 3
    assert wall == 2 * table["seconds"].iloc[0]  # three equal runs on two slots: two in a row on one of them


def test_wall_seconds_places_each_run_on_the_first_free_slot():
    assert wall_seconds([10, 10, 10], 3) == 10
    assert wall_seconds([30, 10, 10, 10], 2) == 30
    assert wall_seconds([], 2) == 0


def test_a_deadline_is_minutes_from_now_or_a_clock_time():
    import datetime as dt

    from study.batch import parse_deadline
    from study.errors import UserError

    now = dt.datetime(2026, 12, 7, 10, 0).timestamp()
    assert parse_deadline(time_budget=90, now=now) == now + 5400
    assert parse_deadline(deadline="12:30", now=now) == dt.datetime(2026, 12, 7, 12, 30).timestamp()
    assert parse_deadline(deadline="09:00", now=now) == dt.datetime(2026, 12, 8, 9, 0).timestamp()  # tomorrow
    assert parse_deadline(deadline="2026-12-07T11:15", now=now) == dt.datetime(2026, 12, 7, 11, 15).timestamp()
    assert parse_deadline(now=now) is None
    with pytest.raises(UserError, match="--deadline"):
        parse_deadline(deadline="noon", now=now)
    with pytest.raises(UserError, match="--time-budget"):
        parse_deadline(time_budget=0, now=now)
