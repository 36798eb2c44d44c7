"""Metrics against scikit-learn, known cases, excluded tags, and the vectorised bootstrap."""
from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

import study.metrics as metrics_module
from study.metrics import (bootstrap_ci, bootstrap_per_tag, evaluate_predictions, paired_bootstrap,
                           resample_weights, score_test_set, tune_thresholds, weighted_auc)


def random_task(n_clips=300, n_tags=6, seed=0, n_regression=2):
    rng = np.random.default_rng(seed)
    y_true = (rng.random((n_clips, n_tags)) < 0.2).astype(np.float32)
    y_true[:, n_tags - n_regression:] = rng.random((n_clips, n_regression))
    y_score = np.clip(0.5 * y_true + 0.7 * rng.random((n_clips, n_tags)), 0, 1)
    y_score = np.round(y_score, 2)  # ties, which the rank-based bootstrap must count as halves
    is_regression = np.arange(n_tags) >= n_tags - n_regression
    return y_true, y_score, is_regression, [f"tag{j}" for j in range(n_tags)]


def test_macro_metrics_equal_sklearn_per_tag_then_unweighted_mean():
    y_true, y_score, is_regression, tags = random_task()
    result = evaluate_predictions(y_true, y_score, tags, is_regression)
    classification = np.flatnonzero(~is_regression)
    roc = [roc_auc_score(y_true[:, j], y_score[:, j]) for j in classification]
    pr = [average_precision_score(y_true[:, j], y_score[:, j]) for j in classification]
    assert result["overall"]["roc_auc"] == pytest.approx(np.mean(roc), abs=1e-12)
    assert result["overall"]["pr_auc"] == pytest.approx(np.mean(pr), abs=1e-12)
    np.testing.assert_allclose(result["per_tag"]["roc_auc"].to_numpy()[classification], roc)
    regression = np.flatnonzero(is_regression)
    squared_error = (y_true[:, regression] - y_score[:, regression]) ** 2
    assert result["overall"]["rmse"] == pytest.approx(np.sqrt(squared_error.mean()))
    np.testing.assert_allclose(result["per_tag"]["rmse"].to_numpy()[regression], np.sqrt(squared_error.mean(axis=0)))
    assert list(result["per_tag"]["kind"]) == ["classification"] * 4 + ["regression"] * 2
    assert result["excluded"] == []


def test_perfect_predictions_score_one_and_reversed_zero():
    y_true = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=float)
    tags, is_regression = ["a", "b"], np.array([False, False])
    perfect = evaluate_predictions(y_true, y_true * 0.9 + 0.05, tags, is_regression)["overall"]
    reversed_ = evaluate_predictions(y_true, 1 - y_true, tags, is_regression)["overall"]
    assert perfect["roc_auc"] == 1.0 and perfect["pr_auc"] == 1.0
    assert reversed_["roc_auc"] == 0.0
    assert np.isnan(perfect["rmse"])  # no regression tag


def test_a_tag_without_positives_or_negatives_is_excluded_and_listed():
    y_true = np.array([[1, 0, 1, 0.4], [0, 0, 1, 0.4], [1, 0, 1, 0.4]], dtype=float)
    y_score = np.array([[0.9, 0.2, 0.3, 0.5], [0.1, 0.4, 0.6, 0.2], [0.8, 0.1, 0.7, 0.4]])
    result = evaluate_predictions(y_true, y_score, ["ok", "none", "all", "level"], np.array([0, 0, 0, 1], bool))
    assert result["excluded"] == ["none", "all"]
    assert result["overall"]["roc_auc"] == 1.0  # 'ok' alone
    assert np.isnan(result["per_tag"].loc[1, "roc_auc"]) and result["per_tag"].loc[2, "n_positive"] == 3
    assert result["overall"]["rmse"] == pytest.approx(np.sqrt(np.mean([0.01, 0.04, 0.0])))  # constant truth is fine
    ci = bootstrap_ci(y_true, y_score, np.array([0, 0, 0, 1], bool), samples=50)
    assert set(ci) == {"roc_auc", "pr_auc", "rmse"}


def test_bad_shapes_and_scores_are_named():
    with pytest.raises(ValueError, match="must both be"):
        evaluate_predictions(np.zeros((3, 2)), np.zeros((3, 3)), ["a", "b"], np.zeros(2, bool))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_predictions(np.zeros((2, 1)), np.array([[np.nan], [0.0]]), ["a"], np.zeros(1, bool))


def test_weighted_auc_equals_sklearn_on_the_resampled_clips():
    y_true, y_score, _, _ = random_task(n_clips=120)
    weights = resample_weights(120, 6, seed=1)
    roc, average_precision = weighted_auc(y_true[:, 0] > 0.5, y_score[:, 0], weights)
    for b in range(6):
        drawn = np.repeat(np.arange(120), weights[b].astype(int))
        assert roc[b] == pytest.approx(roc_auc_score(y_true[drawn, 0], y_score[drawn, 0]), abs=1e-12)
        assert average_precision[b] == pytest.approx(average_precision_score(y_true[drawn, 0], y_score[drawn, 0]),
                                                     abs=1e-12)
    assert weights.sum(axis=1).tolist() == [120.0] * 6
    only_negatives = (y_true[:, 0] < 0.5).astype(float)[None]  # a resample that draws no positive
    assert np.isnan(weighted_auc(y_true[:, 0] > 0.5, y_score[:, 0], only_negatives)[0]).all()


def test_bootstrap_intervals_surround_the_estimate_and_shrink_with_more_clips():
    small = random_task(n_clips=100, seed=2)
    large = random_task(n_clips=2000, seed=2)
    ci_small = bootstrap_ci(*small[:3], samples=300, seed=0)
    ci_large = bootstrap_ci(*large[:3], samples=300, seed=0)
    overall = evaluate_predictions(large[0], large[1], large[3], large[2])["overall"]
    for name in ("roc_auc", "pr_auc", "rmse"):
        lo, hi = ci_large[name]
        assert lo < overall[name] < hi, name
        assert hi - lo < ci_small[name][1] - ci_small[name][0], name
    assert bootstrap_ci(*small[:3], samples=300, seed=0) == ci_small  # seeded


def test_thousand_resamples_of_a_thousand_clips_by_fifty_tags_take_seconds():
    rng = np.random.default_rng(0)
    y_true = (rng.random((1000, 50)) < 0.1).astype(float)
    y_score = rng.random((1000, 50)) + 0.3 * y_true
    started = time.perf_counter()
    ci = bootstrap_ci(y_true, y_score, np.zeros(50, bool), samples=1000)
    assert time.perf_counter() - started < 15  # about a second on an idle core
    assert ci["roc_auc"][0] < ci["roc_auc"][1]


def test_per_tag_intervals_have_a_row_per_tag():
    y_true, y_score, is_regression, _ = random_task()
    table = bootstrap_per_tag(y_true, y_score, is_regression, samples=100)
    assert len(table) == 6 and table["roc_auc_lo"].isna().tolist() == [False] * 4 + [True] * 2
    assert (table["rmse_lo"][4:] < table["rmse_hi"][4:]).all()


def test_paired_bootstrap_finds_a_real_difference_and_none_between_equals():
    y_true, y_score, is_regression, _ = random_task(n_clips=400)
    rng = np.random.default_rng(5)
    worse = np.clip(y_score + rng.normal(0, 0.4, y_score.shape), 0, 1)
    same = paired_bootstrap(y_true, y_score, y_score, is_regression, samples=200)
    assert same["roc_auc"]["diff"] == 0 and same["roc_auc"]["p"] == 1.0
    compared = paired_bootstrap(y_true, y_score, worse, is_regression, samples=200)
    assert compared["roc_auc"]["diff"] > 0 and compared["roc_auc"]["lo"] > 0 and compared["roc_auc"]["p"] < 0.01
    assert compared["rmse"]["diff"] < 0 and compared["rmse"]["p"] < 0.01  # lower error for the better system
    single = evaluate_predictions(y_true, worse, [str(j) for j in range(6)], is_regression)["overall"]
    full = evaluate_predictions(y_true, y_score, [str(j) for j in range(6)], is_regression)["overall"]
    assert compared["pr_auc"]["diff"] == pytest.approx(full["pr_auc"] - single["pr_auc"])


def test_thresholds_maximise_f1_per_classification_tag():
    y_true = np.array([[1, 0.3], [1, 0.5], [0, 0.9], [0, 0.1]])
    y_score = np.array([[0.8, 0.2], [0.6, 0.5], [0.4, 0.8], [0.1, 0.3]])
    thresholds = tune_thresholds(y_true, y_score, ["separable", "level"], np.array([False, True]))
    assert thresholds == {"separable": 0.6, "level": None}


def test_score_test_set_is_what_every_run_stores():
    rng = np.random.default_rng(4)
    y_true = np.column_stack([rng.random(60) < 0.4, np.zeros(60), rng.random(60)]).astype(np.float32)
    y_score = np.clip(y_true + rng.normal(0, 0.4, y_true.shape), 0, 1)
    is_regression = np.array([False, False, True])
    metrics, per_tag = score_test_set(y_true, y_score, ["a", "never", "level"], is_regression,
                                      samples=200, confidence=0.9, seed=1)
    direct = evaluate_predictions(y_true, y_score, ["a", "never", "level"], is_regression)["overall"]
    assert metrics["overall"]["roc_auc"] == pytest.approx(direct["roc_auc"])
    assert metrics["overall"]["rmse"] == pytest.approx(direct["rmse"])
    assert metrics["excluded"] == ["never"] and metrics["n_test"] == 60
    lo, hi = metrics["ci"]["roc_auc"]
    assert lo <= metrics["overall"]["roc_auc"] <= hi
    assert metrics["bootstrap"]["samples"] == 200 and metrics["bootstrap"]["confidence"] == 0.9
    assert {"roc_auc_lo", "roc_auc_hi"} <= set(per_tag.columns) and list(per_tag["tag"]) == ["a", "never", "level"]


def test_intervals_contain_the_observed_value_even_for_biased_average_precision():
    """Resampling clips biases average precision upwards; the median-centred interval still holds the observed value."""
    rng = np.random.default_rng(7)
    y_true = (rng.random((120, 30)) < 0.08).astype(float)  # rare tags, as in tagging
    y_score = rng.random((120, 30))  # a chance-level tagger: the bias is largest here
    is_regression = np.zeros(30, bool)
    observed = evaluate_predictions(y_true, y_score, [str(i) for i in range(30)], is_regression)["overall"]
    ci = bootstrap_ci(y_true, y_score, is_regression, samples=300, seed=1)
    for name in ("roc_auc", "pr_auc"):
        assert ci[name][0] < observed[name] < ci[name][1]
    plain_median = np.median(metrics_module._bootstrap_overall(
        y_true, y_score, is_regression, metrics_module.resample_weights(120, 300, 1))["pr_auc"])
    assert plain_median > observed["pr_auc"]  # the bias the centring removes is real here
