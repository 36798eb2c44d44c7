"""The GBT + descriptors baseline (Table 1): descriptors, per-tag trees, and a run in the store."""
from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import study.data
from study import features, gbt, results
from study.config import preset_config
from study.data.collection import Collection

SR = 16000


def _tone_or_noise(index: int, seconds: float = 1.0) -> tuple[np.ndarray, bool, float]:
    """Clip ``index``: a tone (even) or noise (odd) at a loudness in [0.05, 0.95]; (audio, tonal, loudness)."""
    rng = np.random.default_rng(index)
    loudness = float(rng.uniform(0.05, 0.95))
    t = np.arange(int(seconds * SR)) / SR
    tonal = index % 2 == 0
    signal = np.sin(2 * np.pi * rng.uniform(200, 800) * t) if tonal else rng.uniform(-1, 1, len(t))
    return (loudness * signal).astype(np.float32), tonal, loudness


class ToneLoader:
    """Picklable loader of the synthetic collection (the cache may decode in worker processes)."""

    def __call__(self, track_id: str, row: pd.Series) -> np.ndarray:
        return _tone_or_noise(int(track_id))[0]


def _collection(n_clips: int = 60) -> Collection:
    ids = [str(i) for i in range(n_clips)]
    splits = ["train"] * int(n_clips * 0.6) + ["valid"] * int(n_clips * 0.2)
    splits += ["test"] * (n_clips - len(splits))
    labels = np.array([[float(tonal), loud] for _, tonal, loud in map(_tone_or_noise, range(n_clips))])
    tracks = pd.DataFrame({"split": splits, "artist": ids, "path": ""}, index=pd.Index(ids, name="track_id"))
    return Collection("tones", tracks, ["tonal", "loudness"], labels, ToneLoader(),
                      regression_tags=frozenset({"loudness"}), description={"what": "tones vs noise"})


class DictSource:
    def __init__(self, clips: dict[str, np.ndarray]) -> None:
        self.clips = clips

    def read(self, track_id: str) -> np.ndarray:
        return self.clips[track_id]


def test_descriptors_are_finite_and_fixed_length():
    names = features.feature_names(SR)
    assert len(names) == len(set(names)) > 100
    assert any(n.startswith("mfcc_") for n in names) and "tempo" in names and "tonnetz_mean_0" in names
    clips = [_tone_or_noise(0)[0], _tone_or_noise(1, 2.5)[0], np.zeros(SR, np.float32),
             np.zeros(100, np.float32) + 0.1]  # tone, noise, silence, a clip shorter than one frame
    vectors = [features.clip_features(clip, SR) for clip in clips]
    for vector in vectors:
        assert vector.shape == (len(names),) and vector.dtype == np.float32 and np.isfinite(vector).all()
    tone, noise = (dict(zip(names, v)) for v in vectors[:2])
    assert tone["flatness_mean"] < noise["flatness_mean"]  # the descriptors see what differs


def test_extract_features_caches_and_parallel_matches_serial(tmp_path, monkeypatch):
    source = DictSource({str(i): _tone_or_noise(i, 0.5)[0] for i in range(6)})
    ids = list(source.clips)
    cache_path = tmp_path / "descriptors.npz"
    serial = features.extract_features(source, ids, workers=1, progress=False)
    with joblib.parallel_config(backend="threading"):  # the chunking logic, without starting processes
        parallel = features.extract_features(source, ids, cache_path=cache_path, workers=2, chunk=2, progress=False)
    np.testing.assert_allclose(parallel, serial, rtol=1e-5, atol=1e-6)
    assert cache_path.is_file()

    def fail(*args, **kwargs):
        raise AssertionError("descriptors recomputed although cached")

    monkeypatch.setattr(features, "clip_features", fail)
    again = features.extract_features(source, ids[::-1], cache_path=cache_path, workers=1, progress=False)
    np.testing.assert_array_equal(again, parallel[::-1])  # read from the cache, in the requested order


def test_tag_models_learn_an_easy_task():
    collection = _collection(80)
    clips = [collection.load_audio(t) for t in collection.tracks.index]
    x = np.stack([features.clip_features(c, SR) for c in clips])
    y = collection.labels
    train, valid, test = slice(0, 50), slice(50, 65), slice(65, 80)
    models = gbt.fit_tag_models(x[train], y[train], collection.is_regression, params=gbt.GBTConfig(max_iter=100),
                                seed=0,
                                valid_x=x[valid], valid_y=y[valid])
    scores = gbt.predict_tag_models(models, x[test])
    assert scores.shape == (15, 2) and scores.min() >= 0.0 and scores.max() <= 1.0
    assert roc_auc_score(y[test, 0], scores[:, 0]) > 0.9  # tone vs noise
    rmse = np.sqrt(np.mean((scores[:, 1] - y[test, 1]) ** 2))
    chance = np.sqrt(np.mean((y[train, 1].mean() - y[test, 1]) ** 2))
    assert rmse < 0.6 * chance  # loudness regressed well below predicting the mean
    with joblib.parallel_config(backend="threading"):  # tags in parallel give the same models
        parallel = gbt.fit_tag_models(x[train], y[train], collection.is_regression, seed=0, workers=2,
                                      params=gbt.GBTConfig(max_iter=100), valid_x=x[valid], valid_y=y[valid])
    np.testing.assert_allclose(gbt.predict_tag_models(parallel, x[test]), scores, rtol=1e-6)


def test_a_tag_with_one_class_gets_a_constant():
    x = np.random.default_rng(0).normal(size=(30, 4))
    y = np.zeros((30, 1))
    models = gbt.fit_tag_models(x, y, np.array([False]), params=gbt.GBTConfig(), seed=0)
    np.testing.assert_array_equal(gbt.predict_tag_models(models, x), 0.0)


def test_run_gbt_writes_a_run_at_each_train_size(tmp_path, monkeypatch):
    monkeypatch.setattr(study.data, "load_collection", lambda cfg: _collection(60))
    cfg = preset_config("smoke").with_overrides(cache_dir=str(tmp_path / "cache"), bootstrap_samples=50)
    full = gbt.run_gbt(cfg, results_dir=tmp_path / "results", workers=1)
    small = gbt.run_gbt(cfg.with_overrides(train_size=20), results_dir=tmp_path / "results", workers=1)
    assert results.is_complete(full) and results.is_complete(small) and full != small
    assert list((tmp_path / "cache").glob("*-descriptors-v*.npz"))  # cached beside the audio cache

    runs = results.load_runs(tmp_path / "results").set_index("train_size")
    assert set(runs["model"]) == {"gbt"} and set(runs.index) == {0, 20}
    assert runs.loc[0, "roc_auc"] > 0.9 and runs.loc[0, "n_test"] == 12
    assert runs.loc[0, "roc_auc_lo"] <= runs.loc[0, "roc_auc"] <= runs.loc[0, "roc_auc_hi"]
    assert runs.loc[0, "rmse"] < 0.2 and runs.loc[0, "gbt_max_iter"] == gbt.GBTConfig().max_iter
    assert results.read_json(small, "protocol.json")["train_size"] == 20
    per_tag = results.load_per_tag(tmp_path / "results")
    assert set(per_tag["tag"]) == {"tonal", "loudness"} and (per_tag["gbt_iterations"] > 0).all()
    predictions = results.load_predictions(full)
    assert predictions["y_score"].shape == (12, 2) and predictions["tags"] == ["tonal", "loudness"]

    def fail(*args, **kwargs):
        raise AssertionError("a complete run was trained again")

    monkeypatch.setattr(gbt, "fit_tag_models", fail)
    assert gbt.run_gbt(cfg, results_dir=tmp_path / "results", workers=1) == full  # skipped
    with pytest.raises(AssertionError, match="trained again"):
        gbt.run_gbt(cfg, results_dir=tmp_path / "results", workers=1, force=True)


def test_non_default_tree_settings_get_their_own_run_id():
    cfg = preset_config("smoke")
    assert gbt.gbt_run_id(cfg) == cfg.with_overrides(model="gbt").run_id
    assert gbt.gbt_run_id(cfg, gbt.GBTConfig(max_iter=50)) != gbt.gbt_run_id(cfg)
