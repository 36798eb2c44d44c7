"""Tagging metrics (§5): macro ROC-AUC and PR-AUC, √MSE, per tag, with bootstrap intervals.

- Classification tags: a label >= 0.5 is a positive.  ROC-AUC (``roc_auc_score``) and PR-AUC
  (``average_precision_score``) are computed per tag with scikit-learn, then averaged with equal
  weight per tag (docs/paper-details.md, "Metrics").  A tag with no positive or no
  negative among the evaluated clips has no AUC: it is left out of the mean and listed in
  ``excluded``.
- Regression tags (the 1.2M set's pseudo-uniform tags, §5.1): √MSE.  The paper does not say
  how it averages over tags; here the overall figure is the square root of the mean squared
  error over every (clip, regression tag) pair, i.e. sqrt(mean of the per-tag MSEs), which is
  not the mean of the per-tag √MSEs.  Per tag, √MSE is sqrt(mean over clips).
- ``n_positive`` counts labels >= 0.5 for every tag (for a regression tag: clips in its upper half).
- Bootstrap: clips are resampled with replacement; a resample is represented by how many times
  it draws each clip (a weight), so every AUC is computed from the sorted scores once, for all
  resamples together (1000 resamples of 1000 clips x 50 tags take about a second).
- Intervals are percentile intervals of the resamples shifted so that their median sits on the
  observed value.  Average precision is biased upwards under resampling (a clip drawn twice is a
  tie, ranked together with itself), often by more than its spread, so plain percentiles missed
  the observed PR-AUC of most runs; the shift removes that bias and leaves the width alone.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

METRICS = ("roc_auc", "pr_auc", "rmse")
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "rmse": False}
POSITIVE_THRESHOLD = 0.5  # a classification label >= 0.5 is a positive


def _check(y_true: np.ndarray, y_score: np.ndarray, is_regression: np.ndarray,
           tags: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_score = np.asarray(y_score, dtype=np.float64)
    is_regression = np.asarray(is_regression, dtype=bool)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"y_true {y_true.shape} and y_score {y_score.shape} must both be (clips, tags)")
    if is_regression.shape != (y_true.shape[1],):
        raise ValueError(f"is_regression has shape {is_regression.shape}; "
                         f"expected ({y_true.shape[1]},), one flag per tag")
    if tags is not None and len(tags) != y_true.shape[1]:
        raise ValueError(f"{len(tags)} tag names for {y_true.shape[1]} score columns")
    if len(y_true) == 0:
        raise ValueError("no clips to evaluate")
    if not np.isfinite(y_score).all():
        raise ValueError(f"y_score holds {int((~np.isfinite(y_score)).sum())} NaN or infinite values")
    return y_true, y_score, is_regression


def evaluable(y_true: np.ndarray, is_regression: np.ndarray) -> np.ndarray:
    """Mask of classification tags that have at least one positive and one negative clip."""
    positives = (np.asarray(y_true) >= POSITIVE_THRESHOLD).sum(axis=0)
    return ~np.asarray(is_regression, bool) & (positives > 0) & (positives < len(y_true))


def evaluate_predictions(y_true: np.ndarray, y_score: np.ndarray, tags: Sequence[str],
                         is_regression: np.ndarray) -> dict:
    """Overall (macro) and per-tag metrics of song-level scores; see the module docstring.

    Returns {"overall": {roc_auc, pr_auc, rmse, n_clips}, "per_tag": DataFrame(tag, kind, roc_auc,
    pr_auc, rmse, n_positive), "excluded": [tags without a positive or a negative]}.  An overall
    metric is NaN when no tag of its kind can be scored.
    """
    # imported where used: scikit-learn costs a second at start-up, which `study tag` never needs
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true, y_score, is_regression = _check(y_true, y_score, is_regression, tags)
    positive = y_true >= POSITIVE_THRESHOLD
    scored = evaluable(y_true, is_regression)
    squared_error = (y_true - y_score) ** 2  # (clips, tags)
    rows = []
    for j, tag in enumerate(tags):
        row = {"tag": tag, "kind": "regression" if is_regression[j] else "classification",
               "roc_auc": np.nan, "pr_auc": np.nan, "rmse": np.nan, "n_positive": int(positive[:, j].sum())}
        if is_regression[j]:
            row["rmse"] = float(np.sqrt(squared_error[:, j].mean()))
        elif scored[j]:
            row["roc_auc"] = float(roc_auc_score(positive[:, j], y_score[:, j]))
            row["pr_auc"] = float(average_precision_score(positive[:, j], y_score[:, j]))
        rows.append(row)
    per_tag = pd.DataFrame(rows, columns=["tag", "kind", "roc_auc", "pr_auc", "rmse", "n_positive"])
    overall = {
        "roc_auc": float(per_tag["roc_auc"][scored].mean()) if scored.any() else float("nan"),
        "pr_auc": float(per_tag["pr_auc"][scored].mean()) if scored.any() else float("nan"),
        "rmse": float(np.sqrt(squared_error[:, is_regression].mean())) if is_regression.any() else float("nan"),
        "n_clips": int(len(y_true)),
    }
    excluded = [tag for j, tag in enumerate(tags) if not is_regression[j] and not scored[j]]
    return {"overall": overall, "per_tag": per_tag, "excluded": excluded}


# ---- weighted metrics for the bootstrap --------------------------------------------------------
def resample_weights(n_clips: int, samples: int, seed: int) -> np.ndarray:
    """(samples, n_clips) counts: how often each bootstrap resample draws each clip."""
    if samples < 1:
        raise ValueError(f"bootstrap samples must be >= 1, got {samples}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_clips, size=(samples, n_clips))  # (samples, n_clips) clip indices
    flat = (draws + np.arange(samples)[:, None] * n_clips).ravel()
    return np.bincount(flat, minlength=samples * n_clips).reshape(samples, n_clips).astype(np.float64)


def weighted_auc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUC and average precision of one tag under each row of ``weights`` (resamples, clips).

    Returns two (resamples,) arrays; NaN for a resample without a positive or a negative.
    """
    return _weighted_auc(np.asarray(positive, bool), np.asarray(score, np.float64),
                         np.ascontiguousarray(np.atleast_2d(weights).T))


def _weighted_auc(positive: np.ndarray, score: np.ndarray, clip_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`weighted_auc` with the weights laid out (clips, resamples), so row gathers and sums are contiguous.

    ROC-AUC = P(a positive outscores a negative) + ½ P(tie), counted with weights; average
    precision = Σ over positives of weight x precision at its score / total positive weight,
    which is scikit-learn's Σ Δrecall x precision over descending thresholds.
    """
    pos_score, neg_score = score[positive], score[~positive]
    neg_order = np.argsort(neg_score, kind="stable")
    neg_sorted = neg_score[neg_order]
    neg_cumulative = np.zeros((len(neg_score) + 1, clip_weights.shape[1]))  # [k] = weight of the k lowest negatives
    np.cumsum(clip_weights[np.flatnonzero(~positive)[neg_order]], axis=0, out=neg_cumulative[1:])
    pos_order = np.argsort(pos_score, kind="stable")
    pos_cumulative = np.zeros((len(pos_score) + 1, clip_weights.shape[1]))
    np.cumsum(clip_weights[np.flatnonzero(positive)[pos_order]], axis=0, out=pos_cumulative[1:])
    pos_weights = clip_weights[positive]  # (positives, resamples)
    n_pos, n_neg = pos_cumulative[-1], neg_cumulative[-1]  # (resamples,)
    below = neg_cumulative[np.searchsorted(neg_sorted, pos_score, side="left")]  # negatives scored lower
    at_or_below = neg_cumulative[np.searchsorted(neg_sorted, pos_score, side="right")]
    true_pos = n_pos - pos_cumulative[np.searchsorted(pos_score[pos_order], pos_score, side="left")]  # score >= s
    predicted = true_pos + (n_neg - below)
    with np.errstate(invalid="ignore", divide="ignore"):
        roc = (pos_weights * (below + at_or_below)).sum(axis=0) / (2 * n_pos * n_neg)
        precision = np.where(predicted > 0, true_pos / np.where(predicted > 0, predicted, 1.0), 0.0)
        average_precision = (pos_weights * precision).sum(axis=0) / n_pos
    undefined = (n_pos == 0) | (n_neg == 0)
    roc[undefined] = np.nan
    average_precision[undefined] = np.nan
    return roc, average_precision


def _bootstrap_tags(y_true: np.ndarray, y_score: np.ndarray, is_regression: np.ndarray,
                    weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per-tag metrics under each resample: {metric: (resamples, tags)}, NaN where undefined."""
    n_resamples, n_tags = len(weights), y_true.shape[1]
    positive = y_true >= POSITIVE_THRESHOLD
    scored = evaluable(y_true, is_regression)
    out = {name: np.full((n_resamples, n_tags), np.nan) for name in METRICS}
    clip_weights = np.ascontiguousarray(weights.T)  # (clips, resamples)
    for j in np.flatnonzero(scored):
        out["roc_auc"][:, j], out["pr_auc"][:, j] = _weighted_auc(positive[:, j], y_score[:, j], clip_weights)
    if is_regression.any():
        squared_error = (y_true[:, is_regression] - y_score[:, is_regression]) ** 2  # (clips, regression tags)
        out["rmse"][:, is_regression] = np.sqrt(weights @ squared_error / weights.sum(axis=1, keepdims=True))
    return out


def _bootstrap_overall(y_true: np.ndarray, y_score: np.ndarray, is_regression: np.ndarray,
                       weights: np.ndarray) -> dict[str, np.ndarray]:
    """The overall metrics under each resample: {metric: (resamples,)}, defined as in the docstring."""
    per_tag = _bootstrap_tags(y_true, y_score, is_regression, weights)
    scored = evaluable(y_true, is_regression)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample where every tag is undefined
        out = {name: np.nanmean(per_tag[name][:, scored], axis=1) if scored.any() else np.full(len(weights), np.nan)
               for name in ("roc_auc", "pr_auc")}
    if is_regression.any():
        squared_error = ((y_true[:, is_regression] - y_score[:, is_regression]) ** 2).mean(axis=1)  # (clips,)
        out["rmse"] = np.sqrt(weights @ squared_error / weights.sum(axis=1))
    else:
        out["rmse"] = np.full(len(weights), np.nan)
    return out


def centred_interval(values: np.ndarray, observed: np.ndarray | float, confidence: float,
                     axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of resampled ``values`` along ``axis``, shifted so their median is ``observed``.

    See the module docstring: the shift removes the resampling bias of average precision; for an
    unbiased statistic it changes little.  NaN resamples are ignored; all-NaN gives NaN bounds.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    tail = 100 * (1 - confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN bounds
        lo, median, hi = np.nanpercentile(values, [tail, 50, 100 - tail], axis=axis)
    shift = np.asarray(observed, dtype=np.float64) - median
    return lo + shift, hi + shift


def bootstrap_ci(y_true: np.ndarray, y_score: np.ndarray, is_regression: np.ndarray, *, samples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Bootstrap interval of each overall metric, median-centred (module docstring): {roc_auc, pr_auc, rmse: (lo, hi)}.

    Clips are resampled with replacement.  Tags excluded on the full test set stay excluded;
    a tag without a positive or negative in one resample is left out of that resample's mean.
    A metric with no tag of its kind gets (NaN, NaN).
    """
    y_true, y_score, is_regression = _check(y_true, y_score, is_regression)
    weights = np.vstack([np.ones((1, len(y_true))), resample_weights(len(y_true), samples, seed)])
    overall = _bootstrap_overall(y_true, y_score, is_regression, weights)  # entry 0: the test set itself
    return {name: tuple(float(b) for b in centred_interval(overall[name][1:], overall[name][0], confidence))
            for name in METRICS}


def bootstrap_per_tag(y_true: np.ndarray, y_score: np.ndarray, is_regression: np.ndarray, *, samples: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Bootstrap interval of each tag's metrics (median-centred): columns roc_auc_lo, roc_auc_hi, ..., one row per tag."""
    y_true, y_score, is_regression = _check(y_true, y_score, is_regression)
    weights = np.vstack([np.ones((1, len(y_true))), resample_weights(len(y_true), samples, seed)])
    per_tag = _bootstrap_tags(y_true, y_score, is_regression, weights)  # row 0: the test set itself
    columns = {}
    for name in METRICS:
        columns[f"{name}_lo"], columns[f"{name}_hi"] = centred_interval(per_tag[name][1:], per_tag[name][0],
                                                                        confidence, axis=0)
    return pd.DataFrame(columns)


def score_test_set(y_true: np.ndarray, y_score: np.ndarray, tags: Sequence[str], is_regression: np.ndarray, *,
                   samples: int, confidence: float, seed: int) -> tuple[dict, pd.DataFrame]:
    """What every run stores of its test set, whatever predicted it (network, GBT, released tagger).

    Returns metrics.json's dict (overall means, bootstrap CIs, excluded tags, n_test and the bootstrap
    settings) and the per-tag table with its own CIs.
    """
    boot = {"samples": samples, "confidence": confidence, "seed": seed}
    scored = evaluate_predictions(y_true, y_score, tags, is_regression)
    ci = bootstrap_ci(y_true, y_score, is_regression, **boot)
    per_tag = pd.concat([scored["per_tag"], bootstrap_per_tag(y_true, y_score, is_regression, **boot)], axis=1)
    metrics = {"overall": {name: scored["overall"][name] for name in METRICS},
               "ci": {name: list(bounds) for name, bounds in ci.items()}, "excluded": scored["excluded"],
               "n_test": len(y_true),
               "bootstrap": {**boot, "method": "percentile, median-centred on the observed value; clips resampled "
                                               "with replacement"}}
    return metrics, per_tag


def paired_bootstrap(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, is_regression: np.ndarray, *,
                     samples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, dict[str, float]]:
    """Compare two systems scored on the same clips: {metric: {diff, lo, hi, p}} with diff = a - b.

    Both systems are scored on the same resamples, so the interval is of the paired difference.
    The two-sided p-value tests "no difference" by centring the bootstrap differences on zero:
    p = (1 + #{|d* - d| >= |d|}) / (1 + samples), where d is the full-data difference.
    """
    y_true, score_a, is_regression = _check(y_true, score_a, is_regression)
    _, score_b, _ = _check(y_true, score_b, is_regression)
    weights = resample_weights(len(y_true), samples, seed)
    boot_a = _bootstrap_overall(y_true, score_a, is_regression, weights)
    boot_b = _bootstrap_overall(y_true, score_b, is_regression, weights)
    ones = np.ones((1, len(y_true)))
    full_a = _bootstrap_overall(y_true, score_a, is_regression, ones)
    full_b = _bootstrap_overall(y_true, score_b, is_regression, ones)
    out = {}
    for name in METRICS:
        diff = float(full_a[name][0] - full_b[name][0])
        boot = boot_a[name] - boot_b[name]  # (samples,)
        lo, hi = centred_interval(boot, diff, confidence)
        finite = boot[np.isfinite(boot)]
        if np.isnan(diff) or len(finite) == 0:
            p = float("nan")
        else:
            p = float((1 + np.sum(np.abs(finite - diff) >= abs(diff))) / (1 + len(finite)))
        out[name] = {"diff": diff, "lo": float(lo), "hi": float(hi), "p": p}
    return out


# ---- decision thresholds for `study tag` --------------------------------------------------------
def tune_thresholds(y_true: np.ndarray, y_score: np.ndarray, tags: Sequence[str],
                    is_regression: np.ndarray) -> dict[str, float | None]:
    """Per classification tag, the score threshold (predict yes when score >= it) maximising F1.

    Tuned on the validation set so that `study tag` can answer yes/no.  Regression tags, and tags
    without a positive or a negative to tune on, get None.
    """
    from sklearn.metrics import precision_recall_curve  # imported where used, as in evaluate_predictions

    y_true, y_score, is_regression = _check(y_true, y_score, is_regression, tags)
    scored = evaluable(y_true, is_regression)
    thresholds: dict[str, float | None] = {}
    for j, tag in enumerate(tags):
        if not scored[j]:
            thresholds[tag] = None
            continue
        precision, recall, cut = precision_recall_curve(y_true[:, j] >= POSITIVE_THRESHOLD, y_score[:, j])
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * precision[:-1] * recall[:-1] / (precision[:-1] + recall[:-1]))
        thresholds[tag] = float(cut[int(np.argmax(f1))])
    return thresholds
