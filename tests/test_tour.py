"""The tour's views: a clip's waveform and log-mel, a front-end's first layer, trained or not, and the tag table."""
from __future__ import annotations

import shutil

import matplotlib
import numpy as np
import pandas as pd
import torch

matplotlib.use("Agg")

from study import results, tour  # noqa: E402
from study.checkpoint import BEST, load_checkpoint, save_checkpoint  # noqa: E402
from study.config import RunConfig  # noqa: E402
from study.data import tag_table  # noqa: E402
from study.data.collection import Collection  # noqa: E402
from study.experiment import checkpoint_dir, share_checkpoint, shared_checkpoint  # noqa: E402
from study.models import build_model  # noqa: E402

from tests.test_report import fake_metrics, store_run  # noqa: E402


def test_first_layer_views_of_both_front_ends_and_the_untrained_fallback():
    base = RunConfig.from_flat("smoke")
    no_runs = pd.DataFrame(columns=["run_id", "model", "train_size", "seed"])
    spectrogram, label = tour.trained_model(no_runs, model="spectrogram", base=base, n_tags=3)
    assert label.startswith("untrained")
    figure = tour.plot_first_layer(spectrogram, label=label, shown=4)
    assert len(figure.axes) == 4  # four timbral filters, one panel each
    waveform, _ = tour.trained_model(no_runs, model="waveform", base=base, n_tags=3)
    image = tour.plot_first_layer(waveform).axes[0].images[0].get_array()
    assert image.shape[1] == waveform.frontend.widths[0]  # one column per first-layer filter


def test_plot_clip_shows_the_waveform_above_its_log_mel():
    audio = np.sin(2 * np.pi * 440 * np.arange(8000) / 16000).astype(np.float32)
    figure = tour.plot_clip(audio, RunConfig().audio, title="a")
    assert len(figure.axes) == 2 and figure.axes[1].images[0].get_array().shape[0] == RunConfig().audio.n_mels


def test_trained_model_loads_the_best_checkpoint_of_the_largest_run(tmp_path):
    small, large = (RunConfig.from_flat("smoke", model="waveform", train_size=n, cache_dir=str(tmp_path / "cache"))
                    for n in (10, 30))
    for cfg in (small, large):
        store_run(tmp_path, cfg, fake_metrics("waveform", cfg.data.train_size, 0))
    network = build_model(large.model, n_tags=4, audio_cfg=large.audio)
    with torch.no_grad():
        next(network.frontend.parameters()).fill_(0.25)  # recognisable first-layer weights
    save_checkpoint(checkpoint_dir(large) / BEST, {"config": large.to_dict(), "model_state": network.state_dict(),
                                                   "tags": ["rock", "jazz", "piano", "acousticness"]})
    loaded, label = tour.trained_model(results.load_runs(tmp_path), model="waveform", base=small, n_tags=4,
                                       results_dir=tmp_path)
    assert label == f"trained: {large.run_id}"
    assert torch.equal(next(loaded.frontend.parameters()), next(network.frontend.parameters()))


def test_a_shared_checkpoint_serves_a_clone_without_the_cache(tmp_path):
    cfg = RunConfig.from_flat("smoke", model="waveform", train_size=30, cache_dir=str(tmp_path / "cache"))
    store_run(tmp_path, cfg, fake_metrics("waveform", 30, 0))
    network = build_model(cfg.model, n_tags=4, audio_cfg=cfg.audio)
    with torch.no_grad():
        next(network.frontend.parameters()).fill_(0.5)
    save_checkpoint(checkpoint_dir(cfg) / BEST, {"config": cfg.to_dict(), "model_state": network.state_dict(),
                                                 "tags": ["rock", "jazz", "piano", "acousticness"],
                                                 "valid_scores": torch.zeros(100, 4), "valid_ids": ["v"] * 100})
    shared = share_checkpoint(cfg, tmp_path)
    assert shared == shared_checkpoint(tmp_path, cfg.run_id) and "valid_scores" not in load_checkpoint(shared)
    shutil.rmtree(tmp_path / "cache")  # a fresh clone: no cache, only the results
    loaded, label = tour.trained_model(results.load_runs(tmp_path), model="waveform", base=cfg, n_tags=4,
                                       results_dir=tmp_path)
    assert label == f"trained: {cfg.run_id}" and next(loaded.frontend.parameters()).eq(0.5).all()


def test_tag_table_uses_one_word_per_kind_and_lists_popular_tags_first():
    tracks = pd.DataFrame({"split": ["train", "train", "valid", "test"], "artist": "", "path": ""},
                          index=pd.Index(["a", "b", "c", "d"], name="track_id"))
    labels = np.array([[0, 1, 0.2], [0, 1, 0.9], [1, 1, 0.4], [0, 0, 0.5]], dtype=np.float32)
    collection = Collection("toy", tracks, ["rare", "common", "energy"], labels, loader=None,
                            regression_tags=frozenset({"energy"}))
    table = tag_table(collection)
    assert list(table["tag"]) == ["common", "rare", "energy"]
    assert list(table["kind"]) == ["classification", "classification", "regression"]
    assert list(table["positives"]) == [3, 1, ""] and table.loc[2, "mean_label"] == 0.5
    assert collection.tags_of("c") == ["rare", "common"]  # a regression tag is never 'carried'
