"""The training loop: losses, early stopping, checkpoints, exact resume, and one experiment end to end.

Everything runs on the stand-ins of tests/tiny.py (a one-convolution tagger, clips whose tags it can hear).
"""
from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from study.checkpoint import BEST, LAST, load_checkpoint, load_tagger, save_checkpoint
from study.config import AudioConfig, DataConfig, EvalConfig, ModelConfig, RunConfig, TrainConfig, preset_config
from study.data.collection import Collection
from study.device import DistInfo, amp_enabled, derived_seed, resolve_device, set_deterministic, setup_distributed
from study.evaluate import SongSet
from study.train import (Progress, TaggingLoss, loss_kind, positive_weights, probability_loss, process_batch,
                         read_progress, selection_metric, train)
from tests.tiny import (CLIP_SAMPLES, PATCH_SAMPLES, REGRESSION, TAGS, TINY_TRAIN, TinyTagger, run_tiny,
                        synthetic_clip, tiny_data, tiny_model)

pytestmark = pytest.mark.usefixtures("one_thread")


def same_history(a: list[dict], b: list[dict]) -> bool:
    drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    return drop(a) == drop(b)


# ---- loss and early stopping ------------------------------------------------------------------
def test_auto_loss_is_mse_with_any_regression_tag_and_bce_otherwise():
    assert loss_kind("auto", REGRESSION) == "mse"
    assert loss_kind("auto", np.zeros(3, bool)) == "bce"
    assert loss_kind("bce", REGRESSION) == "bce"
    with pytest.raises(ValueError, match="hinge"):
        loss_kind("hinge", REGRESSION)


def test_positive_weights_are_negatives_over_positives_for_classification_tags_only():
    labels = np.array([[1, 0, 0.2], [0, 0, 0.9], [0, 0, 0.5], [0, 0, 0.1]], dtype=np.float32)
    weights = positive_weights(labels, np.array([False, False, True]))
    np.testing.assert_allclose(weights, [3.0, 1.0, 1.0])  # 3 negatives per positive; no positives; regression


def test_weighted_losses_match_their_formulas():
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    weights = np.array([4.0, 2.0])
    bce = TaggingLoss(kind="bce", pos_weight=weights)(logits, targets)
    p = torch.sigmoid(logits)
    w = torch.tensor(weights)
    expected_bce = -(w * targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()
    assert torch.allclose(bce, expected_bce.float(), atol=1e-6)
    mse = TaggingLoss(kind="mse", pos_weight=weights)(logits, targets)
    expected_mse = ((1 + (w - 1) * targets) * (p - targets) ** 2).mean()
    assert torch.allclose(mse, expected_mse.float(), atol=1e-6)
    assert TaggingLoss(kind="mse")(logits, targets) < mse  # the weights raise the positives' errors


def test_per_kind_loss_is_cross_entropy_on_binary_tags_and_squared_error_on_regression_tags():
    logits = torch.tensor([[0.3, -1.0, 0.8], [2.0, 0.5, -0.2]])
    targets = torch.tensor([[1.0, 0.25, 0.0], [0.0, 0.9, 1.0]])
    is_regression = np.array([False, True, False])
    p = torch.sigmoid(logits)
    cross_entropy = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
    squared_error = (p - targets) ** 2
    expected = torch.where(torch.tensor(is_regression), squared_error, cross_entropy).mean()
    loss = TaggingLoss(kind="per_kind", is_regression=is_regression)(logits, targets)
    assert torch.allclose(loss, expected, atol=1e-6)
    assert probability_loss("per_kind", p.numpy(), targets.numpy(), is_regression) == pytest.approx(float(expected), abs=1e-6)
    assert loss_kind("per_kind", is_regression) == "per_kind"
    with pytest.raises(ValueError, match="needs is_regression"):
        TaggingLoss(kind="per_kind")


def test_selection_metric_prefers_roc_auc_then_rmse_then_loss():
    assert selection_metric(np.array([[1, 0.3], [0, 0.6]]), np.array([False, True])) == "valid_roc_auc"
    assert selection_metric(np.array([[1, 0.3], [1, 0.6]]), np.array([False, True])) == "-valid_rmse"
    assert selection_metric(np.array([[1], [1]]), np.array([False])) == "-valid_loss"


def test_selection_metric_by_name_defaults_to_validation_loss():
    labels, is_regression = np.array([[1, 0.3], [0, 0.6]]), np.array([False, True])
    assert TrainConfig().early_stopping == "loss"
    assert selection_metric(labels, is_regression, "loss") == "-valid_loss"
    assert selection_metric(labels, is_regression, "pr_auc") == "valid_pr_auc"
    assert selection_metric(labels, is_regression, "rmse") == "-valid_rmse"
    with pytest.raises(ValueError, match="early_stopping 'f1'"):
        selection_metric(labels, is_regression, "f1")


def test_progress_stops_after_patience_epochs_without_improvement():
    cfg = TrainConfig(patience=2, max_epochs=10)
    run = Progress(learning_rate=cfg.learning_rate)
    assert run.update(1, 0.70, cfg)
    assert run.update(2, 0.75, cfg)
    assert not run.update(3, 0.75, cfg)  # equal is not better
    assert not run.finished
    assert not run.update(4, 0.60, cfg)
    assert run.finished and run.best_epoch == 2 and run.best_metric == 0.75
    assert run.stop_reason == "early stopping"


def test_progress_halves_the_learning_rate_on_plateaus_and_names_the_cap():
    cfg = TrainConfig(patience=5, lr_patience=2, max_epochs=6, learning_rate=1e-3)
    run = Progress(learning_rate=cfg.learning_rate)
    for epoch, value in enumerate([0.5, 0.4, 0.4], start=1):  # best at 1, then two bad epochs: halve
        run.update(epoch, value, cfg)
    assert run.learning_rate == pytest.approx(5e-4) and run.plateau_epochs == 0 and run.bad_epochs == 2
    run.update(4, 0.6, cfg)  # a new best keeps the halved rate and clears both counts
    assert run.learning_rate == pytest.approx(5e-4) and run.bad_epochs == 0
    run.update(5, 0.1, cfg)
    run.update(6, 0.1, cfg)  # two more bad epochs: halve again, and epoch 6 is the cap
    assert run.learning_rate == pytest.approx(2.5e-4)
    assert run.finished and run.stop_reason == "epoch cap"


# ---- the loop -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 4-epoch run."""
    folder = tmp_path_factory.mktemp("reference")
    return run_tiny(folder), folder


def test_training_learns_the_audible_tags(reference):
    result, _ = reference
    first, best = result.history[0], result.history[result.best_epoch - 1]
    assert best["valid_roc_auc"] > 0.9 and best["valid_roc_auc"] > first["valid_roc_auc"] + 0.1
    assert result.history[-1]["train_loss"] < first["train_loss"]
    assert result.selection == "valid_roc_auc"
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]


def test_resume_after_a_kill_between_epochs_ends_like_an_uninterrupted_run(reference, tmp_path):
    def kill_after_two(epoch, record):
        if epoch == 2:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        run_tiny(tmp_path, on_epoch_end=kill_after_two)
    assert load_checkpoint(tmp_path / LAST)["epoch"] == 2
    assert read_progress(tmp_path)["resumed_after"] == 0
    resumed = run_tiny(tmp_path, model=tiny_model(seed=99))  # other initial weights: all must come from last.pt
    expected, _ = reference
    assert resumed.epochs_run == 2
    assert read_progress(tmp_path)["resumed_after"] == 2 and read_progress(tmp_path)["epoch"] == 4
    for name, tensor in expected.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert same_history(resumed.history, expected.history)
    assert resumed.thresholds == expected.thresholds


def test_resume_after_a_kill_in_the_middle_of_an_epoch_ends_like_an_uninterrupted_run(reference, tmp_path):
    data = tiny_data()
    data[0].fail_after = 48 * 2 + 16 * 2 + 16 + 20  # 2 epochs of patches and validation, the norm clips, then 20 more
    with pytest.raises(KeyboardInterrupt):
        run_tiny(tmp_path, data=data)
    assert load_checkpoint(tmp_path / LAST)["epoch"] == 2
    resumed = run_tiny(tmp_path)
    expected, _ = reference
    for name, tensor in expected.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert same_history(resumed.history, expected.history)


def test_a_finished_run_is_loaded_not_retrained(reference):
    expected, folder = reference
    again = run_tiny(folder)
    assert again.epochs_run == 0
    assert all(torch.equal(t, again.model.state_dict()[n]) for n, t in expected.model.state_dict().items())


def test_another_configuration_refuses_the_checkpoint(reference):
    _, folder = reference
    with pytest.raises(ValueError, match="another configuration"):
        run_tiny(folder, replace(TINY_TRAIN, learning_rate=0.5))


def test_a_run_resumes_on_another_device_or_folder_but_not_with_another_setting(tmp_path):
    cfg = RunConfig(train=replace(TINY_TRAIN, max_epochs=1))
    run_tiny(tmp_path, cfg)
    moved = cfg.with_overrides(device="cuda", num_workers=4, cache_dir="elsewhere", data_root="/mnt/copy")
    assert moved.run_id == cfg.run_id
    here = moved.with_overrides(device="cpu", num_workers=0)  # what this machine runs; the same run id
    run_tiny(tmp_path, here)  # finished: loaded, not refused
    with pytest.raises(ValueError, match="another configuration"):
        run_tiny(tmp_path, cfg.with_overrides(learning_rate=0.5))


def _scaler_without_autocast(monkeypatch) -> None:
    """An enabled GradScaler on the CPU, as a CUDA run has, without float16 autocast: scaling by a
    power of two and back is exact, so the run must end exactly as one without a scaler."""
    import contextlib

    import study.evaluate
    import study.train

    monkeypatch.setattr(study.train, "amp_enabled", lambda device, requested: True)
    for module in (study.train, study.evaluate):
        monkeypatch.setattr(module, "autocast", lambda device, enabled: contextlib.nullcontext())


def _kill_after(epoch_to_stop: int):
    def stop(epoch, record):
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt("simulated kill")
    return stop


@pytest.mark.parametrize("first_enabled", [False, True], ids=["cpu-to-scaler", "scaler-to-cpu"])
def test_a_run_resumes_across_an_enabled_and_a_disabled_gradient_scaler(reference, tmp_path, monkeypatch,
                                                                        first_enabled):
    with monkeypatch.context() as patch:
        if first_enabled:
            _scaler_without_autocast(patch)
        with pytest.raises(KeyboardInterrupt):
            run_tiny(tmp_path, on_epoch_end=_kill_after(2))
    assert bool(load_checkpoint(tmp_path / LAST)["scaler_state"]) == first_enabled  # a disabled scaler saves {}
    with monkeypatch.context() as patch:
        if not first_enabled:
            _scaler_without_autocast(patch)
        resumed = run_tiny(tmp_path)
    expected, _ = reference
    assert resumed.epochs_run == 2
    for name, tensor in expected.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert same_history(resumed.history, expected.history)


def test_batch_size_is_the_batch_of_one_step_over_all_processes(tmp_path):
    assert process_batch(32, DistInfo()) == 32
    assert process_batch(32, DistInfo(rank=1, world_size=4)) == 8
    with pytest.raises(ValueError, match=r"batch_size 30 .* 4 processes .*\(e.g. 32\)"):
        process_batch(30, DistInfo(world_size=4))
    # refused before the process group is used: no group exists here
    with pytest.raises(ValueError, match="batch_size 8 .* 3 processes"):
        run_tiny(tmp_path, dist=DistInfo(world_size=3))
    with pytest.raises(ValueError, match="sync_batchnorm needs CUDA"):
        run_tiny(tmp_path, replace(TINY_TRAIN, sync_batchnorm=True), dist=DistInfo(world_size=2))
    run_tiny(tmp_path / "one", replace(TINY_TRAIN, sync_batchnorm=True, max_epochs=1))  # one process: no effect


def test_an_unfinished_run_refuses_another_number_of_processes(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_tiny(tmp_path, on_epoch_end=_kill_after(1))
    assert load_checkpoint(tmp_path / LAST)["world_size"] == 1
    with pytest.raises(ValueError, match=r"trained by 1 process\(es\) and would resume with 2; resume it without "
                                         r"torchrun"):
        run_tiny(tmp_path, dist=DistInfo(rank=0, world_size=2))  # refused before the process group is used


def test_checkpoints_hold_the_contract_fields_input_stats_and_thresholds(reference):
    result, folder = reference
    best, last = load_checkpoint(folder / BEST), load_checkpoint(folder / LAST)
    for key in ("config", "model_state", "epoch", "best_metric", "tags", "regression_tags", "thresholds", "history",
                "world_size"):
        assert key in best, key
    for key in ("optimizer_state", "rng_state", "scaler_state", "progress"):
        assert key in last, key
    assert best["epoch"] == result.best_epoch and last["epoch"] == 4
    assert best["regression_tags"] == ["brightness"]
    assert set(best["thresholds"]) == set(TAGS) and best["thresholds"]["brightness"] is None
    assert 0 < best["thresholds"]["loud"] < 1
    assert float(best["model_state"]["input_std"]) != 1.0  # fit_input_stats ran and its buffers were saved


def test_load_tagger_rebuilds_the_trained_model(tmp_path):
    result = run_tiny(tmp_path, RunConfig(train=replace(TINY_TRAIN, max_epochs=1)))
    model, meta = load_tagger(tmp_path / BEST, "cpu", build=lambda model_cfg, n_tags, audio_cfg: TinyTagger(n_tags))
    assert not model.training and meta["tags"] == TAGS
    waveform = torch.randn(2, 400)
    result.model.eval()
    assert torch.equal(model(waveform), result.model(waveform))
    assert "optimizer_state" not in meta


def test_early_stopping_ends_a_run_whose_metric_stops_improving(tmp_path):
    cfg = replace(TINY_TRAIN, learning_rate=0.0, max_epochs=20, patience=2)  # weights never change
    result = run_tiny(tmp_path, cfg, model=tiny_model(batch_norm=False, dropout=0.0))
    assert len(result.history) == 3 and result.best_epoch == 1


def test_different_seeds_give_different_runs(reference, tmp_path):
    other = run_tiny(tmp_path, replace(TINY_TRAIN, seed=4, max_epochs=1))
    assert not torch.equal(other.model.dense.weight, reference[0].model.dense.weight)


def test_deterministic_mode_trains_and_repeats_exactly(tmp_path):
    cfg = replace(TINY_TRAIN, deterministic=True, max_epochs=1)
    try:
        first = run_tiny(tmp_path / "first", cfg)
        assert torch.are_deterministic_algorithms_enabled()
        second = run_tiny(tmp_path / "second", cfg)
    finally:
        set_deterministic(False)
    assert torch.equal(first.model.dense.weight, second.model.dense.weight)


def test_device_choice_and_mixed_precision_decision():
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    assert amp_enabled(torch.device("cuda", 0), True) and not amp_enabled(torch.device("cuda", 0), False)
    assert not amp_enabled(torch.device("cpu"), True)  # CPU trains in float32
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        assert setup_distributed("cpu") == DistInfo()  # one process: no process group
    assert derived_seed(0, 1, 0) == derived_seed(0, 1, 0) != derived_seed(0, 2, 0)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"epoch": 1})

    def crash(state, stream):
        stream.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_class_weighting_needs_training_labels(tmp_path):
    cache, train_ids, train_labels, valid_ids, valid_labels = tiny_data()
    valid = SongSet(reader=cache, track_ids=valid_ids, labels=valid_labels, patch_samples=200, hop_samples=200)
    patches = [(torch.zeros(200), torch.zeros(4))] * 8  # a plain list has no .labels
    with pytest.raises(ValueError, match="train_labels"):
        train(tiny_model(), patches, valid=valid, config=RunConfig(train=replace(TINY_TRAIN, class_weighting=True)),
              checkpoint_dir=tmp_path, tags=TAGS, is_regression=REGRESSION, progress=False)


# ---- one experiment end to end -------------------------------------------------------------------
class SyntheticLoader:
    """A picklable Collection loader: the synthetic clip of the track's index."""

    def __call__(self, track_id: str, row: pd.Series) -> np.ndarray:
        return synthetic_clip(int(track_id[1:]))[0]


def tiny_collection(config: DataConfig) -> Collection:
    n = 60
    ids = [f"t{i}" for i in range(n)]
    splits = ["train"] * 36 + ["valid"] * 12 + ["test"] * 12
    tracks = pd.DataFrame({"split": splits, "artist": ids, "path": ""}, index=pd.Index(ids, name="track_id"))
    labels = np.stack([synthetic_clip(i)[1] for i in range(n)])
    return Collection("tiny", tracks, list(TAGS), labels, SyntheticLoader(), frozenset({"brightness"}))


def tiny_run_config(tmp_path: Path, **overrides) -> RunConfig:
    cfg = RunConfig(name="tiny", audio=AudioConfig(sample_rate=16000), model=ModelConfig(model="spectrogram"),
                    data=DataConfig(cache_dir=str(tmp_path / "cache")),
                    train=replace(TINY_TRAIN, max_epochs=2, patch_seconds=PATCH_SAMPLES / 16000),
                    eval=EvalConfig(eval_patch_seconds=PATCH_SAMPLES / 16000, eval_hop_seconds=PATCH_SAMPLES / 16000,
                                    bootstrap_samples=50))
    return cfg.with_overrides(**overrides)


@pytest.fixture
def tiny_study(monkeypatch):
    import study.data
    import study.data.cache
    import study.models

    monkeypatch.setattr(study.data, "load_collection", tiny_collection)
    monkeypatch.setattr(study.models, "build_model", lambda model_cfg, n_tags, audio_cfg: TinyTagger(n_tags))
    monkeypatch.setattr(study.data.cache, "default_workers", lambda: 1)


def test_run_experiment_trains_tests_and_writes_a_complete_run(tmp_path, tiny_study, capsys, monkeypatch):
    from study.experiment import checkpoint_dir, evaluate_checkpoint, run_experiment
    from study.results import is_complete, load_curves, load_runs, read_json

    cfg = tiny_run_config(tmp_path)
    import study.experiment
    from study.data.cache import SETTINGS_FILE

    joined = []  # the cache folders built when the process group would be joined

    def setup_distributed(device):
        joined.append([p.name for p in (tmp_path / "cache").glob(f"*/{SETTINGS_FILE}")])
        return DistInfo()

    monkeypatch.setattr(study.experiment, "setup_distributed", setup_distributed)
    run_dir = run_experiment(cfg, results_dir=tmp_path / "results")
    assert joined == [[SETTINGS_FILE]]  # the cache was built before any process group would be joined
    assert is_complete(run_dir) and run_dir.name == cfg.run_id
    assert read_json(run_dir, "provenance.json")["world_size"] == 1
    out = capsys.readouterr().out
    assert "parameters" in out and cfg.config_hash() in out and "device cpu" in out
    runs = load_runs(tmp_path / "results")
    assert len(runs) == 1 and runs.loc[0, "n_test"] == 12
    assert runs.loc[0, "roc_auc_lo"] <= runs.loc[0, "roc_auc"] <= runs.loc[0, "roc_auc_hi"]
    assert 0 < runs.loc[0, "rmse"] < 1
    assert list(load_curves(tmp_path / "results")["epoch"]) == [1, 2]
    protocol = read_json(run_dir, "protocol.json")
    assert protocol["aggregation"] == "mean" and protocol["n_windows"]["min"] == CLIP_SAMPLES // PATCH_SAMPLES
    assert (checkpoint_dir(cfg) / BEST).is_file()

    assert run_experiment(cfg, results_dir=tmp_path / "results") == run_dir  # complete: skipped
    assert "skipped" in capsys.readouterr().out

    whole = evaluate_checkpoint(cfg.with_overrides(whole_clip=True), checkpoint=checkpoint_dir(cfg) / BEST,
                                results_dir=tmp_path / "results")
    assert whole != run_dir and read_json(whole, "protocol.json")["whole_clip"] is True
    assert len(load_runs(tmp_path / "results")) == 2
    assert read_json(whole, "protocol.json")["training"]["world_size"] == 1

    from study.cli import main as study_main

    assert study_main(["evaluate", "--checkpoint", str(checkpoint_dir(cfg) / BEST), "--device", "cpu",
                       "--eval_hop_seconds", str(PATCH_SAMPLES / 32000), "--results-dir",
                       str(tmp_path / "results")]) == 0  # the device is where it runs, not what it computes
    assert len(load_runs(tmp_path / "results")) == 3
    assert study_main(["evaluate", "--checkpoint", str(checkpoint_dir(cfg) / BEST), "--learning_rate", "0.1"]) == 2
    assert "so learning_rate cannot be given" in capsys.readouterr().err


def test_the_train_command_takes_every_config_field(tmp_path):
    import argparse

    from study.experiment import config_from_args, register_cli

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--preset", "smoke", "--learning_rate", "0.01", "--whole-clip", "true",
                              "--model", "waveform", "--train_size", "40"])
    cfg = config_from_args(args)
    assert cfg.train.learning_rate == 0.01 and cfg.eval.whole_clip is True
    assert cfg.model.model == "waveform" and cfg.data.train_size == 40 and cfg.name == "smoke"
    with pytest.raises(ValueError, match="train_size"):  # a UserError: one line from `study`
        config_from_args(parser.parse_args(["train", "--train_size", "many"]))
    default_rate = preset_config("default").train.learning_rate  # an omitted field keeps the preset's value
    assert math.isclose(config_from_args(parser.parse_args(["evaluate"])).train.learning_rate, default_rate)


def test_what_can_be_checked_without_audio_is_refused_before_any_is_decoded(tmp_path, tiny_study, monkeypatch):
    import study.experiment as experiment

    def no_decoding(*args, **kwargs):
        raise AssertionError("audio was decoded before the refusal")

    monkeypatch.setattr(experiment, "ensure_cache", no_decoding)
    with pytest.raises(ValueError, match="'gbt' is Table 1's baseline.*not a network"):
        experiment.run_experiment(tiny_run_config(tmp_path, model="gbt"), results_dir=tmp_path / "results")
    with pytest.raises(ValueError, match="patch_seconds 0.0005 at 16000 Hz: 8 samples, shorter than the 16"):
        experiment.run_experiment(tiny_run_config(tmp_path, patch_seconds=0.0005), results_dir=tmp_path / "results")
    with pytest.raises(ValueError, match="exceeds the 36 training tracks"):
        experiment.run_experiment(tiny_run_config(tmp_path, train_size=500), results_dir=tmp_path / "results")
