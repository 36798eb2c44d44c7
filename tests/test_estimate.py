"""study.estimate and `study batch --dry-run`: wall-time estimates from measured throughput and stored epochs."""
from __future__ import annotations

import pandas as pd
from study import results
from study.batch import dry_run
from study.config import RunConfig
from study.estimate import expected_epochs, throughput, _stored_epochs


def store(results_dir, cfg: RunConfig, epochs: int) -> None:
    results.write_run(results_dir, cfg.run_id, config=cfg.to_dict(), metrics={"overall": {}, "n_test": 1},
                      per_tag=pd.DataFrame({"tag": ["a"]}), curve=None, protocol={"training": {"epochs": epochs}},
                      provenance={}, predictions={"track_ids": ["t"], "y_true": [[1.0]], "y_score": [[0.5]],
                                                  "tags": ["a"], "is_regression": [False]})


def test_expected_epochs_come_from_like_runs_then_the_nearest_size_then_the_cap(tmp_path):
    for seed, epochs in enumerate((4, 6, 11)):
        store(tmp_path, RunConfig.from_flat("smoke", model="waveform", train_size=20, seed=seed), epochs)
    store(tmp_path, RunConfig.from_flat("smoke", model="waveform", train_size=60, seed=0), 9)
    stored = _stored_epochs(tmp_path)
    assert expected_epochs(RunConfig.from_flat("smoke", model="waveform", train_size=20, seed=7), stored)[0] == 6
    epochs, basis = expected_epochs(RunConfig.from_flat("smoke", model="waveform", train_size=50), stored)
    assert epochs == 9 and "60" in basis  # 50 is nearer to 60 than to 20 on a log scale
    capped = RunConfig.from_flat("smoke", model="spectrogram", train_size=20)
    assert expected_epochs(capped, stored)[0] == capped.train.max_epochs
    assert "upper bound" in expected_epochs(capped, stored)[1]
    other_schedule = RunConfig.from_flat("smoke", model="waveform", train_size=20, patience=7)
    assert "upper bound" in expected_epochs(other_schedule, stored)[1]  # another schedule says nothing


def test_throughput_is_measured_and_positive():
    speed = throughput(RunConfig.from_flat("smoke", model="spectrogram"), 5, steps=1)
    assert speed["train_patches_per_s"] > 0 and speed["windows_per_s"] > speed["train_patches_per_s"] / 10


def test_dry_run_lists_every_point_and_runs_nothing(tmp_path, capsys):
    assert dry_run("grids/smoke.yaml", results_dir=tmp_path / "results", jobs=2) == 0
    out = capsys.readouterr().out
    assert "5 points, 0 stored, 5 to run" in out and "min with 2 job(s)" in out
    assert not (tmp_path / "results").exists()  # nothing was trained or written
