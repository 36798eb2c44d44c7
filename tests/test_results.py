"""The results store: atomic run folders, the tidy tables, corrupt-run handling, provenance."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study import provenance as prov
from study import results
from study.config import RunConfig, preset_config
from study.data.collection import Collection

TAGS = ["rock", "piano", "acoustic"]


def _run_inputs(cfg: RunConfig, roc_auc: float, *, extra_config: dict | None = None) -> dict:
    """Everything write_run needs for a small fake run of 4 test clips."""
    rng = np.random.default_rng(len(cfg.run_id))
    y_true = (rng.random((4, 3)) > 0.5).astype(np.float32)
    return dict(
        config={**cfg.to_dict(), **(extra_config or {})},
        metrics={"overall": {"roc_auc": roc_auc, "pr_auc": 0.4, "rmse": float("nan")},
                 "ci": {"roc_auc": (roc_auc - 0.05, roc_auc + 0.05), "pr_auc": (0.3, 0.5)},
                 "excluded": ["acoustic"], "n_test": 4},
        per_tag=pd.DataFrame({"tag": TAGS[:2], "kind": ["classification"] * 2, "roc_auc": [roc_auc, roc_auc],
                              "pr_auc": [0.4, 0.4], "rmse": [np.nan, np.nan], "n_positive": [2, 1]}),
        curve=pd.DataFrame({"epoch": [0, 1], "train_loss": [0.7, 0.5], "valid_loss": [0.69, 0.6],
                            "valid_roc_auc": [0.6, roc_auc], "seconds": [1.0, 1.1]}),
        protocol={"patch_seconds": 3.0, "hop_seconds": 3.0, "whole_clip": False},
        provenance={"code": {"git_hash": "abc123", "dirty": False}, "data": {"manifest_hash": "m1"},
                    "timings": {"train": 12.5}, "created": "2024-01-01T00:00:00+00:00"},
        predictions={"track_ids": ["a", "b", "c", "d"], "y_true": y_true, "y_score": rng.random((4, 3)),
                     "tags": TAGS, "is_regression": [False, False, True]},
    )


def _write(root: Path, cfg: RunConfig, roc_auc: float = 0.8, **kwargs) -> Path:
    extra = kwargs.pop("extra_config", None)
    return results.write_run(root, cfg.run_id, **_run_inputs(cfg, roc_auc, extra_config=extra), **kwargs)


def test_round_trip_into_tidy_tables(tmp_path):
    small = preset_config("smoke").with_overrides(train_size=50, seed=2)
    gbt = preset_config("smoke").with_overrides(model="gbt")
    _write(tmp_path, small, 0.8)
    _write(tmp_path, gbt, 0.7, extra_config={"gbt": {"max_iter": 300}})

    runs = results.load_runs(tmp_path)
    assert list(runs["run_id"]) == sorted([small.run_id, gbt.run_id])
    row = runs.set_index("run_id").loc[small.run_id]
    for name, value in small.flat().items():  # every flat config field, with its value
        assert row[name] == value, name
    assert row["roc_auc"] == pytest.approx(0.8) and row["roc_auc_lo"] == pytest.approx(0.75)
    assert row["roc_auc_hi"] == pytest.approx(0.85)
    assert np.isnan(row["rmse"]) and np.isnan(row["rmse_lo"])  # NaN survives strict JSON as null
    assert row["n_test"] == 4 and row["n_excluded"] == 1
    assert row["git_hash"] == "abc123" and not row["dirty"] and row["seconds_train"] == 12.5
    assert runs.set_index("run_id").loc[gbt.run_id, "gbt_max_iter"] == 300  # extras become columns
    assert runs.set_index("run_id").loc[gbt.run_id, "model"] == "gbt"

    per_tag = results.load_per_tag(tmp_path)
    assert len(per_tag) == 4 and set(per_tag["run_id"]) == {small.run_id, gbt.run_id}
    curves = results.load_curves(tmp_path)
    assert list(curves.columns[:2]) == ["run_id", "epoch"] and len(curves) == 4

    saved = results.load_predictions(results.run_path(tmp_path, small.run_id))
    expected = _run_inputs(small, 0.8)["predictions"]
    assert saved["track_ids"] == expected["track_ids"] and saved["tags"] == TAGS
    np.testing.assert_allclose(saved["y_score"], expected["y_score"], rtol=1e-6)
    assert saved["is_regression"].tolist() == [False, False, True]


def test_results_dir_or_runs_dir_are_the_same_store(tmp_path):
    cfg = preset_config("smoke")
    path = _write(tmp_path / "runs", cfg)
    assert path == tmp_path / "runs" / cfg.run_id
    assert list(results.load_runs(tmp_path)["run_id"]) == [cfg.run_id]


def test_a_crash_mid_write_leaves_no_run(tmp_path, monkeypatch):
    cfg = preset_config("smoke")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(results.np, "savez_compressed", fail)  # config, metrics, csvs already written
    with pytest.raises(OSError, match="disk full"):
        _write(tmp_path, cfg)
    assert not (tmp_path / "runs" / cfg.run_id).exists()
    assert list((tmp_path / "runs").iterdir()) == []  # the temporary folder was removed too
    assert results.load_runs(tmp_path).empty


def test_a_killed_process_leaves_only_an_ignored_temporary_folder(tmp_path):
    """The process dies inside write_run (no cleanup runs): readers see nothing."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import numpy as np
        from study import results
        from study.config import preset_config
        from test_results import _write
        np_save = np.savez_compressed
        def die(*a, **k):
            os._exit(3)
        results.np.savez_compressed = die
        _write(__import__("pathlib").Path({str(tmp_path)!r}), preset_config("smoke"))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    leftovers = list((tmp_path / "runs").iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-")  # a half-written folder exists...
    assert (leftovers[0] / "config.json").exists()
    assert results.load_runs(tmp_path).empty  # ...but no reader sees it
    assert not results.is_complete(tmp_path / "runs" / preset_config("smoke").run_id)


def test_existing_run_replaced_only_when_asked(tmp_path):
    cfg = preset_config("smoke")
    _write(tmp_path, cfg, 0.8)
    with pytest.raises(FileExistsError, match=cfg.run_id):
        _write(tmp_path, cfg, 0.9)
    assert results.load_runs(tmp_path)["roc_auc"].tolist() == [pytest.approx(0.8)]
    _write(tmp_path, cfg, 0.9, overwrite=True)
    assert results.load_runs(tmp_path)["roc_auc"].tolist() == [pytest.approx(0.9)]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [cfg.run_id]  # nothing set aside is left


def test_unfinished_folder_is_ignored_and_replaced(tmp_path):
    cfg = preset_config("smoke")
    stale = tmp_path / "runs" / cfg.run_id
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")  # no marker: not a result
    assert results.load_runs(tmp_path).empty and not results.is_complete(stale)
    _write(tmp_path, cfg)  # no overwrite needed for an unfinished folder
    assert results.is_complete(stale)


def test_corrupt_runs_are_named_and_skipped(tmp_path):
    good, truncated, garbled = (preset_config("smoke").with_overrides(seed=s) for s in (1, 2, 3))
    for cfg in (good, truncated, garbled):
        _write(tmp_path, cfg)
    metrics = results.run_path(tmp_path, truncated.run_id) / "metrics.json"
    metrics.write_text(metrics.read_text()[:20])  # a size the marker did not record
    config = results.run_path(tmp_path, garbled.run_id) / "config.json"
    config.write_text("x" * config.stat().st_size)  # same size, unreadable JSON

    with pytest.warns(results.CorruptRunWarning) as caught:
        runs = results.load_runs(tmp_path)
    assert runs["run_id"].tolist() == [good.run_id]
    messages = " ".join(str(w.message) for w in caught)
    assert truncated.run_id in messages and "metrics.json" in messages
    assert garbled.run_id in messages


def test_predictions_with_wrong_shapes_are_refused(tmp_path):
    cfg = preset_config("smoke")
    inputs = _run_inputs(cfg, 0.8)
    inputs["predictions"]["y_score"] = np.zeros((4, 2))
    with pytest.raises(ValueError, match="y_score"):
        results.write_run(tmp_path, cfg.run_id, **inputs)
    assert not results.run_path(tmp_path, cfg.run_id).exists()


def _collection() -> Collection:
    tracks = pd.DataFrame({"split": ["train", "valid", "test"], "artist": ["a", "b", "c"], "path": [""] * 3},
                          index=pd.Index(["t1", "t2", "t3"], name="track_id"))
    return Collection("tiny", tracks, ["rock"], np.array([[1.0], [0.0], [1.0]]), loader=None,
                      description={"source": "test"})


def test_provenance_records_code_packages_hardware_data_and_time():
    record = results.provenance(_collection(), {"train": 1.5})
    assert set(record) >= {"code", "packages", "hardware", "timings", "data", "created"}
    assert {"git_hash", "dirty"} <= set(record["code"])
    assert record["packages"]["numpy"] == np.__version__ and record["packages"]["python"]
    assert {"torch", "librosa", "scikit-learn", "pandas"} <= set(record["packages"])
    assert record["hardware"]["cpu_count"] >= 1 and "device_name" in record["hardware"]
    assert record["timings"] == {"train": 1.5}
    assert record["data"]["manifest_hash"] == _collection().manifest_hash()
    assert record["data"]["counts"] == {"train": 1, "valid": 1, "test": 1}
    assert record["data"]["description"] == {"source": "test"}
    assert record["created"].endswith("+00:00")
    json.dumps(record)  # serialisable as it is


def test_provenance_leaves_out_where_the_data_lie_on_this_machine():
    collection = _collection()
    collection.description.update(data_root="/mnt/someone/mtt", audio_root="/mnt/someone/mtt/mp3",
                                  missing=["/mnt/someone/mtt/mp3/0/gone.mp3"])
    assert results.provenance(collection, {})["data"]["description"] == {"source": "test"}


# ---- recording a scored test set and deciding whether to skip -----------------------------------------
def _scored_collection(n_clips: int = 8, *, missing: tuple[str, ...] = ()) -> Collection:
    ids = [f"t{i}" for i in range(n_clips)]
    tracks = pd.DataFrame({"split": "test", "artist": ids, "path": [f"{t}.mp3" for t in ids]},
                          index=pd.Index(ids, name="track_id"))
    labels = np.array([[i % 2, (i // 2) % 2, i / n_clips] for i in range(n_clips)], dtype=np.float32)
    kept = ~tracks.index.isin(missing)  # what a reader does with files that are not there
    excluded = tuple({"track_id": t, "split": "test", "path": f"{t}.mp3", "reason": "missing",
                      "detail": "no such file under the audio folder"} for t in missing)
    return Collection("toy", tracks[kept], TAGS, labels[kept], loader=None, regression_tags=frozenset({"acoustic"}),
                      description={"audio_root": "/data/toy"}, excluded=excluded)


def _record(root: Path, collection: Collection, cfg: RunConfig) -> Path:
    test_ids = collection.ids("test")
    scores = np.clip(collection.label_rows(test_ids) + 0.1, 0, 1)
    return results.record_run(root, cfg.run_id, config=cfg, collection=collection, test_ids=test_ids, scores=scores,
                              protocol={"aggregation": "mean"}, timings={"test": 0.1})


def test_record_run_stores_metrics_provenance_and_the_clips_left_out(tmp_path, capsys):
    cfg = preset_config("smoke").with_overrides(bootstrap_samples=20)
    copy = _scored_collection().exclude({"t7": "AudioError: /data/toy/t7.mp3: cannot decode audio"},
                                        reason="undecodable")
    run_dir = _record(tmp_path, copy, cfg)
    assert results.is_complete(run_dir) and run_dir.name == cfg.run_id
    out = capsys.readouterr().out
    assert f"{cfg.run_id} test (7 clips): roc_auc" in out
    assert f"1 clips could not be used (1 undecodable); listed in {run_dir / results.EXCLUDED_FILE}" in out
    left_out = results.load_excluded(run_dir)
    assert left_out.to_dict("records") == [{"track_id": "t7", "split": "test", "path": "t7.mp3",
                                            "reason": "undecodable",
                                            "detail": "AudioError: t7.mp3: cannot decode audio"}]
    assert results.recorded_manifest(run_dir) == _scored_collection().manifest_hash()  # the data as read
    assert results.read_json(run_dir, "protocol.json")["bootstrap"]["samples"] == 20
    assert results.load_runs(tmp_path).loc[0, "n_test"] == 7


def test_a_complete_run_is_reused_only_for_the_same_data(tmp_path, capsys):
    cfg = preset_config("smoke").with_overrides(bootstrap_samples=20)
    copy_a, copy_b = _scored_collection(), _scored_collection(missing=("t1", "t2", "t3"))
    assert copy_a.manifest_hash() != copy_b.manifest_hash()
    run_dir = _record(tmp_path, copy_a, cfg)
    capsys.readouterr()
    assert results.reusable_run(tmp_path, cfg.run_id, copy_a.manifest_hash()) == run_dir
    assert "skipped (--force redoes it)" in capsys.readouterr().out
    assert results.reusable_run(tmp_path, cfg.run_id, copy_a.manifest_hash(), force=True) is None
    assert results.reusable_run(tmp_path, cfg.run_id, copy_b.manifest_hash()) is None
    assert "made on other data" in capsys.readouterr().out
    _record(tmp_path, copy_b, cfg)  # the run of these data replaces the other data's
    assert results.load_runs(tmp_path).loc[0, "n_test"] == 5
    assert list(results.load_excluded(run_dir)["reason"]) == ["missing"] * 3
    unrecorded = preset_config("smoke").with_overrides(seed=9)
    _write(tmp_path, unrecorded)  # a folder that names other data
    assert results.reusable_run(tmp_path, unrecorded.run_id, copy_a.manifest_hash(), announce=False) is None


def test_config_json_stores_folders_inside_the_repository_relative_to_it():
    from study.paths import REPOSITORY_ROOT

    cfg = preset_config("smoke").with_overrides(cache_dir=str(REPOSITORY_ROOT / "cache" / "mine"),
                                                data_root="/data/mtt")
    stored = results.portable_config(cfg)
    assert stored["data"]["cache_dir"] == "cache/mine" and stored["data"]["data_root"] == "/data/mtt"
    assert RunConfig.from_dict(stored).run_id == cfg.run_id


def test_code_version_from_a_git_repository(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "code.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "new.json").write_text("{}")  # outputs do not make the code dirty
    clean = prov.code_version(tmp_path)
    assert len(clean["git_hash"]) == 40 and clean["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    dirty = prov.code_version(tmp_path)
    assert dirty["dirty"] is True and dirty["changed_files"] == ["code.py"]


def test_code_version_without_git_or_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # git may not look above tmp_path
    (tmp_path / "plain").mkdir()
    outside = prov.code_version(tmp_path / "plain")
    assert outside["git_hash"] is None and outside["dirty"] is None

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(prov.subprocess, "run", no_git)
    version = prov.code_version()
    assert version["git_hash"] is None and version["dirty"] is None
