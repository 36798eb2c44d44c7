"""The data-scale question with statistics (§5.1, Table 1, Figure 3): does the waveform front-end
overtake the spectrogram front-end as training data grow, and can the study's runs tell?

Uncertainty has two sources here, and both are resampled:

- **test clips**: each resample draws the test clips with replacement, the *same* draw for every
  run (they share one test split), so differences between models are paired clip by clip;
- **seeds**: within a (model, training-set size) cell the seeds are drawn with replacement too,
  so a cell's interval also reflects how much a rerun with another seed moves it.

From those resamples come a cell's mean with its interval, the paired difference between two
models at one size (difference, interval, two-sided p-value), the slope per decade of training data
of each front-end, and where the two fitted lines cross.  Slopes are fitted to the cell means,
metric = intercept + slope * log10(size), as Figure 3 draws them.  The training record of every
run (why it stopped, its learning curve) is read here too, for the convergence views.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from study.metrics import METRICS, _bootstrap_overall, centred_interval, resample_weights
from study.report import LOWER_IS_BETTER, fit_line
from study.results import load_curves, load_predictions, read_json, run_path

FRONT_ENDS = ("waveform", "spectrogram")
BASELINE = "gbt"
PAIRS = (("waveform", "spectrogram"), ("waveform", BASELINE), ("spectrogram", BASELINE))
PERCENT = ("roc_auc", "pr_auc")  # shown x100, as the paper prints them
COLORS = {"waveform": "tab:blue", "spectrogram": "tab:orange", BASELINE: "0.35"}  # as Figure 3 draws them


# ---- every run's metrics under shared resamples of the test clips -----------------------------------
def resample_runs(runs: pd.DataFrame, results_dir: str | Path = "results", *, samples: int = 1000,
                  seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """run_id -> {metric: (1 + samples,)}: entry 0 on the test set itself, then one per clip resample.

    Every run is scored on the same resamples (same clips, same multiplicity), which requires one
    shared test set: runs whose test clips differ from the first run's are refused by name.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    reference: list[str] | None = None
    weights = None
    for run_id in runs["run_id"]:
        predictions = load_predictions(run_path(results_dir, run_id))
        if reference is None:
            reference = predictions["track_ids"]
            weights = np.vstack([np.ones((1, len(reference))),
                                 resample_weights(len(reference), samples, seed)])  # (1 + samples, clips)
        elif predictions["track_ids"] != reference:
            raise ValueError(f"{run_id}: its test clips differ from {runs['run_id'].iloc[0]}'s; paired resampling "
                             f"needs runs on one test set")
        values = _bootstrap_overall(predictions["y_true"].astype(np.float64), predictions["y_score"].astype(np.float64),
                                    predictions["is_regression"], weights)
        out[run_id] = {metric: values[metric] * (100.0 if metric in PERCENT else 1.0) for metric in METRICS}
    return out


def _cell_draws(run_ids: Sequence[str], resampled: dict[str, dict[str, np.ndarray]], metric: str,
                rng: np.random.Generator) -> np.ndarray:
    """(1 + samples,): the cell's mean over seeds on the test set, then over seeds drawn with replacement."""
    values = np.stack([resampled[run_id][metric] for run_id in run_ids])  # (seeds, 1 + samples)
    draws = rng.integers(0, len(run_ids), size=(values.shape[1] - 1, len(run_ids)))  # (samples, seeds)
    resampled_means = np.nanmean(values[draws, np.arange(1, values.shape[1])[:, None]], axis=1)
    return np.concatenate([[np.nanmean(values[:, 0])], resampled_means])


CELL = ("model", "train_size")  # what makes a cell of the data-scale study; the loss ablation adds "loss"


def _cells(runs: pd.DataFrame, by: Sequence[str] = CELL) -> dict[tuple, list[str]]:
    return {tuple(key): list(group["run_id"]) for key, group in runs.groupby(list(by))}


def _interval(draws: np.ndarray, confidence: float, observed: float) -> tuple[float, float]:
    """The resamples' percentile interval, median-centred on the observed value (study.metrics.centred_interval)."""
    if not np.isfinite(draws).any():
        return float("nan"), float("nan")
    low, high = centred_interval(draws, observed, confidence)
    return float(low), float(high)


def _percentile_range(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Plain percentiles (for the crossover size, a ratio with no observed value to centre on when undefined)."""
    if not len(values):
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def cell_draws(runs: pd.DataFrame, resampled: dict[str, dict[str, np.ndarray]], *, by: Sequence[str] = CELL,
               seed: int = 0) -> dict[tuple, dict[str, np.ndarray]]:
    """Cell (its ``by`` values, e.g. (model, size)) -> {metric: (1 + samples,)} means over its seeds;
    one random stream, so reruns are identical."""
    rng = np.random.default_rng(seed)
    return {cell: {metric: _cell_draws(ids, resampled, metric, rng) for metric in METRICS}
            for cell, ids in sorted(_cells(runs, by).items())}


# ---- the tables ------------------------------------------------------------------------------------------
def cell_table(runs: pd.DataFrame, draws: dict[tuple, dict[str, np.ndarray]], *, by: Sequence[str] = CELL,
               confidence: float = 0.95) -> pd.DataFrame:
    """Per cell: its ``by`` values, runs, and each metric's mean over seeds with its clip-and-seed interval."""
    counts = runs.groupby(list(by)).size()
    columns = [*by, "n_runs"] + [f"{m}{s}" for m in METRICS for s in ("", "_lo", "_hi")]
    rows = []
    for cell, values in draws.items():
        row = {**dict(zip(by, cell)), "n_runs": int(counts[cell if len(cell) > 1 else cell[0]])}
        for metric, draw in values.items():
            row[metric] = draw[0]
            row[f"{metric}_lo"], row[f"{metric}_hi"] = _interval(draw[1:], confidence, draw[0])
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def difference(draws: dict[tuple, dict[str, np.ndarray]], first: tuple, second: tuple, metric: str, *,
               confidence: float = 0.95) -> dict[str, float] | None:
    """Cell ``first`` minus cell ``second`` on the same resamples: difference, interval, two-sided p.

    The p-value tests "no difference" by centring the resampled differences on zero:
    p = (1 + #{|d* - d| >= |d|}) / (1 + resamples), d the difference on the test set itself.
    None when either is undefined.
    """
    values = draws[first][metric] - draws[second][metric]
    observed, resampled = values[0], values[1:]
    finite = resampled[np.isfinite(resampled)]
    if not np.isfinite(observed) or not len(finite):
        return None
    p = (1 + np.sum(np.abs(finite - observed) >= abs(observed))) / (1 + len(finite))
    low, high = _interval(resampled, confidence, observed)
    return {"difference": float(observed), "difference_lo": low, "difference_hi": high, "p": float(p)}


def paired_differences(draws: dict[tuple[str, int], dict[str, np.ndarray]], *, pairs=PAIRS,
                       confidence: float = 0.95) -> pd.DataFrame:
    """Per size and pair (a, b) of models present at that size: a - b for each metric (:func:`difference`).

    For √MSE a negative difference favours a (lower is better).
    """
    rows = []
    sizes = sorted({size for _, size in draws})
    for size in sizes:
        for first, second in pairs:
            if (first, size) not in draws or (second, size) not in draws:
                continue
            for metric in METRICS:
                found = difference(draws, (first, size), (second, size), metric, confidence=confidence)
                if found is not None:
                    rows.append({"train_size": size, "a": first, "b": second, "metric": metric, **found})
    return pd.DataFrame(rows, columns=["train_size", "a", "b", "metric", "difference", "difference_lo",
                                       "difference_hi", "p"])


def contrasts(draws: dict[tuple, dict[str, np.ndarray]], *, by: Sequence[str], vary: str,
              confidence: float = 0.95) -> pd.DataFrame:
    """Every pair of values of ``vary`` compared within each cell of the other ``by`` fields, e.g. the
    losses compared per model: those fields, ``a``, ``b``, metric, a - b with interval and p (:func:`difference`)."""
    position = list(by).index(vary)
    fixed = [name for name in by if name != vary]
    groups: dict[tuple, list[tuple]] = {}
    for cell in draws:
        groups.setdefault(tuple(v for i, v in enumerate(cell) if i != position), []).append(cell)
    rows = []
    for rest, cells in sorted(groups.items()):
        for i, first in enumerate(cells):
            for second in cells[i + 1:]:
                for metric in METRICS:
                    found = difference(draws, first, second, metric, confidence=confidence)
                    if found is not None:
                        rows.append({**dict(zip(fixed, rest)), "a": first[position], "b": second[position],
                                     "metric": metric, **found})
    return pd.DataFrame(rows, columns=[*fixed, "a", "b", "metric", "difference", "difference_lo", "difference_hi", "p"])


def _line(sizes: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """(slope per decade, intercept) of values on log10(sizes) (Figure 3's fit); NaN with fewer than two sizes."""
    fit = fit_line(sizes, values)
    return (float("nan"), float("nan")) if fit is None else (fit.slope, fit.intercept)


def scaling_fits(draws: dict[tuple[str, int], dict[str, np.ndarray]], *, models: Sequence[str] = FRONT_ENDS,
                 confidence: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(slopes, crossovers): each model's slope per decade of training data (``slope``, in the metric's
    units, AUCs in %) with its interval, and where two lines meet (``crossover``, in clips).

    A crossover is the size where the two fitted lines take the same value.  Its interval comes
    from the resamples in which the lines are not parallel; ``where`` summarises it plainly: inside
    the trained range, beyond it, or not placed (the slopes' difference is not distinguishable from
    zero, so any size, or none, is compatible with the runs).
    """
    slope_rows, cross_rows = [], []
    for metric in METRICS:
        lines = {}
        for model in models:
            cells = sorted(size for m, size in draws if m == model)
            if len(cells) < 2:
                continue
            sizes = np.array(cells, dtype=float)
            values = np.stack([draws[(model, size)][metric] for size in cells])  # (sizes, 1 + samples)
            fitted = np.array([_line(sizes, values[:, b]) for b in range(values.shape[1])])  # (1 + samples, 2)
            lines[model] = (sizes, fitted)
            low, high = _interval(fitted[1:, 0], confidence, fitted[0, 0])
            slope_rows.append({"metric": metric, "model": model, "n_sizes": len(cells), "slope": fitted[0, 0],
                               "slope_lo": low, "slope_hi": high, "intercept": fitted[0, 1]})
        if len(lines) < 2:
            continue
        (first, (sizes_a, fit_a)), (second, (sizes_b, fit_b)) = list(lines.items())[:2]
        slope_gap = fit_a[:, 0] - fit_b[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_cross = (fit_b[:, 1] - fit_a[:, 1]) / slope_gap
        gap_low, gap_high = _interval(slope_gap[1:], confidence, slope_gap[0])
        trained = (min(sizes_a.min(), sizes_b.min()), max(sizes_a.max(), sizes_b.max()))
        placed = not (gap_low <= 0 <= gap_high)
        crossing = 10 ** log_cross[0] if np.isfinite(log_cross[0]) and abs(log_cross[0]) < 30 else float("nan")
        usable = log_cross[1:][np.isfinite(log_cross[1:]) & (np.abs(log_cross[1:]) < 30)]
        low, high = _percentile_range(10 ** usable, confidence)
        if not placed:
            where = "not placed: the slopes cannot be told apart"
        elif trained[0] <= crossing <= trained[1]:
            where = "inside the trained range"
        else:
            where = "below the trained range" if crossing < trained[0] else "beyond the trained range"
        higher = first if (fit_a[0, 0] > fit_b[0, 0]) == (metric != "rmse") else second
        cross_rows.append({"metric": metric, "a": first, "b": second, "slope_difference": slope_gap[0],
                           "slope_difference_lo": gap_low, "slope_difference_hi": gap_high,
                           "crossover": crossing if placed else float("nan"),
                           "crossover_lo": low if placed else float("nan"),
                           "crossover_hi": high if placed else float("nan"),
                           "where": where, "better_with_more_data": higher})
    slope_columns = ["metric", "model", "n_sizes", "slope", "slope_lo", "slope_hi", "intercept"]
    cross_columns = ["metric", "a", "b", "slope_difference", "slope_difference_lo", "slope_difference_hi",
                     "crossover", "crossover_lo", "crossover_hi", "where", "better_with_more_data"]
    return pd.DataFrame(slope_rows, columns=slope_columns), pd.DataFrame(cross_rows, columns=cross_columns)


# ---- the paper's open question: the whole clip as the input, against the mean over its patches ------------
def whole_clip_pairs(runs: pd.DataFrame, configs: Iterable) -> pd.DataFrame:
    """(model, train_size, seed, run_id_patches, run_id_whole) for every network point of ``configs`` whose
    checkpoint was also scored with the whole clip as one input (``study evaluate --whole_clip true``)."""
    from study.report import select_runs

    networks = [cfg for cfg in configs if cfg.model.model in FRONT_ENDS and not cfg.eval.whole_clip]
    key = ["model", "train_size", "seed"]
    patches = select_runs(runs, networks)
    whole = select_runs(runs, [cfg.with_overrides(whole_clip=True) for cfg in networks])
    if patches.empty or whole.empty:
        return pd.DataFrame(columns=[*key, "run_id_patches", "run_id_whole"])
    return (patches[[*key, "run_id"]].merge(whole[[*key, "run_id"]], on=key, suffixes=("_patches", "_whole"))
            .sort_values(key).reset_index(drop=True))


def whole_clip_comparison(pairs: pd.DataFrame, resampled: dict[str, dict[str, np.ndarray]], *,
                          confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per (model, size) and metric: the mean over seeds of each protocol and of whole clip − patches.

    The two protocols score the same checkpoint on the same test clips, so the difference is paired
    twice: clip by clip (the shared resamples of :func:`resample_runs`) and seed by seed (the seeds
    are drawn with replacement as pairs).  For √MSE a negative difference favours the whole clip.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for (model, size), group in pairs.groupby(["model", "train_size"], sort=True):
        patch_ids, whole_ids = list(group["run_id_patches"]), list(group["run_id_whole"])
        for metric in METRICS:
            patches = np.stack([resampled[run_id][metric] for run_id in patch_ids])  # (seeds, 1 + samples)
            whole = np.stack([resampled[run_id][metric] for run_id in whole_ids])
            picks = rng.integers(0, len(group), size=(patches.shape[1] - 1, len(group)))  # seeds, as pairs
            columns = np.arange(1, patches.shape[1])[:, None]

            def mean(values: np.ndarray) -> np.ndarray:
                return np.concatenate([[np.nanmean(values[:, 0])], np.nanmean(values[picks, columns], axis=1)])

            gap = mean(whole - patches)
            if not np.isfinite(gap[0]):
                continue
            finite = gap[1:][np.isfinite(gap[1:])]
            low, high = _interval(gap[1:], confidence, gap[0])
            rows.append({"model": model, "train_size": size, "n_seeds": len(group), "metric": metric,
                         "patches": mean(patches)[0], "whole_clip": mean(whole)[0], "difference": gap[0],
                         "difference_lo": low, "difference_hi": high,
                         "p": float((1 + np.sum(np.abs(finite - gap[0]) >= abs(gap[0]))) / (1 + len(finite)))})
    return pd.DataFrame(rows, columns=["model", "train_size", "n_seeds", "metric", "patches", "whole_clip",
                                       "difference", "difference_lo", "difference_hi", "p"])


def whole_clip_reading(table: pd.DataFrame, *, metrics: Sequence[str] = METRICS, confidence: float = 0.95) -> str:
    """Per metric, one sentence per (model, size): which input is ahead, by how much, with the interval of
    that lead (or that the two cannot be told apart)."""
    if table.empty:
        return "No checkpoint of these runs has been scored with the whole clip yet."
    level = f"{confidence:.0%}".replace("%", " %")
    blocks = []
    for metric in metrics:
        rows = table[table["metric"] == metric]
        if rows.empty:
            continue
        unit, digits = (" points", 2) if metric in PERCENT else ("", 4)
        lines = [f"On {_metric_name(metric)}:"]
        for _, row in rows.iterrows():
            d, low, high = row["difference"], row["difference_lo"], row["difference_hi"]
            where = f"{row['model']} at {int(row['train_size']):,} clips ({int(row['n_seeds'])} seed(s))"
            if low <= 0 <= high:
                lines.append(f"- {where}: the two inputs cannot be told apart (whole clip − patches "
                             f"{d:+.{digits}f}{unit}, {level} interval [{low:.{digits}f}, {high:.{digits}f}]).")
                continue
            winner = "the whole clip" if (d > 0) == (metric not in LOWER_IS_BETTER) else "the mean over patches"
            lead, lead_lo, lead_hi = _oriented(d, low, high, 1.0 if d > 0 else -1.0)
            lines.append(f"- {where}: {winner} is ahead by {lead:.{digits}f}{unit} ({level} interval "
                         f"[{lead_lo:.{digits}f}, {lead_hi:.{digits}f}]).")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ---- convergence: why each run stopped, and its learning curve -------------------------------------------
def training_records(runs: pd.DataFrame, results_dir: str | Path = "results") -> pd.DataFrame:
    """One row per network run: stop reason, epochs, best epoch, patience, and whether it ended at its
    epoch cap while still improving (its best epoch within the last ``patience`` epochs): such a run
    measures the cap, not the model."""
    rows = []
    for row in runs.itertuples():
        if row.model == BASELINE:
            continue
        training = read_json(run_path(results_dir, row.run_id), "protocol.json").get("training") or {}
        epochs, best = training.get("epochs"), training.get("best_epoch")
        reason = training.get("stop_reason") or ("epoch cap" if epochs is not None and epochs >= row.max_epochs
                                                 else "unknown")
        improving = bool(epochs is not None and best is not None and epochs >= row.max_epochs
                         and best > epochs - max(int(row.patience), 1))
        rows.append({"run_id": row.run_id, "model": row.model, "train_size": int(row.train_size), "seed": int(row.seed),
                     "stop_reason": reason, "epochs": epochs, "best_epoch": best, "max_epochs": int(row.max_epochs),
                     "patience": int(row.patience), "capped_while_improving": improving,
                     "interruptions": training.get("interruptions", 0)})
    return pd.DataFrame(rows, columns=["run_id", "model", "train_size", "seed", "stop_reason", "epochs", "best_epoch",
                                       "max_epochs", "patience", "capped_while_improving", "interruptions"])


def stop_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per (model, size): how many runs stopped early, at the cap, at the cap while still improving."""
    if records.empty:
        return pd.DataFrame(columns=["model", "train_size", "n_runs", "early_stopping", "epoch_cap",
                                     "capped_while_improving", "epochs_median", "best_epoch_median"])
    grouped = records.groupby(["model", "train_size"])
    table = grouped.size().rename("n_runs").to_frame()
    table["early_stopping"] = grouped["stop_reason"].apply(lambda s: int((s == "early stopping").sum()))
    table["epoch_cap"] = grouped["stop_reason"].apply(lambda s: int((s == "epoch cap").sum()))
    table["capped_while_improving"] = grouped["capped_while_improving"].sum().astype(int)
    table["epochs_median"] = grouped["epochs"].median()
    table["best_epoch_median"] = grouped["best_epoch"].median()
    return table.reset_index()


def learning_curves(runs: pd.DataFrame, results_dir: str | Path = "results") -> pd.DataFrame:
    """Every network run's curve.csv with its model, size and seed (long form, for plotting)."""
    curves = load_curves(results_dir)
    keep = runs.loc[runs["model"] != BASELINE, ["run_id", "model", "train_size", "seed"]]
    return curves.merge(keep, on="run_id", how="inner")


def plot_learning_curves(curves: pd.DataFrame, *, metrics: Iterable[str] = ("valid_loss", "valid_roc_auc"),
                         col: str = "train_size", hue: str = "model") -> plt.Figure:
    """Validation metric after every epoch of every run: one column per value of ``col`` (training-set
    size), one row per metric, colour by ``hue`` (front-end), one line per seed; a dot marks the epoch
    each run kept (its lowest validation loss)."""
    metrics = [m for m in metrics if m in curves]
    if curves.empty or not metrics:
        figure, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no training curves stored yet", ha="center", va="center")
        ax.set_axis_off()
        return figure
    long = curves.melt(id_vars=["run_id", col, hue, "seed", "epoch"], value_vars=metrics, var_name="metric",
                       value_name="value")
    names = sorted(curves[hue].unique(), key=str)
    palette = COLORS if hue == "model" else dict(zip(names, sns.color_palette(n_colors=len(names))))
    grid = sns.relplot(data=long, x="epoch", y="value", hue=hue, palette=palette, units="seed", estimator=None,
                       row="metric", col=col, kind="line", facet_kws={"sharey": "row", "sharex": False},
                       height=2.4, aspect=1.25, linewidth=0.9, alpha=0.8)
    kept = curves.loc[curves.groupby("run_id")["valid_loss"].idxmin()] if "valid_loss" in curves else curves.iloc[:0]
    for (metric, value), ax in grid.axes_dict.items():
        chosen = kept[kept[col] == value]
        for name, mine in chosen.groupby(hue):
            ax.scatter(mine["epoch"], mine[metric], s=12, color=palette.get(name, "k"), zorder=3)
        title = f"{value:,} training clips" if col == "train_size" else str(value)
        ax.set_title(title if metric == metrics[0] else "", fontsize=9)
    for metric, ax in zip(metrics, grid.axes[:, 0]):
        ax.set_ylabel(metric.replace("valid_", "validation ").replace("_", "-"))
    grid.figure.suptitle("learning curves (dots: the epoch with the lowest validation loss, the checkpoint kept)",
                         fontsize=9, y=1.01)
    return grid.figure


def budget_tradeoff(curves: pd.DataFrame, budgets: Sequence[float] = (45, 90, 180), *, jobs: int = 1,
                    patience: int = 5, study_runs: int | None = None) -> pd.DataFrame:
    """What a wall-time budget for the whole study would have bought, read off the stored learning curves.

    Each of the study's network runs gets an equal share of ``budget`` minutes x ``jobs`` parallel runs;
    a run keeps the epoch with the lowest validation loss among those it finished inside its share.  Per
    (budget, model, size): the runs' median finished epochs, the mean validation ROC-AUC and PR-AUC (%)
    of the kept epochs, and how many runs would still have been improving (kept epoch within the last
    ``patience`` finished), i.e. would measure the budget.  The rows with ``as_run`` are the runs as
    they ran, to convergence; their minutes are the study's measured training wall time (epoch seconds
    summed over runs / ``jobs``).  Testing and data preparation are not counted.  ``study_runs`` is the
    number of network runs the budget is shared among, the whole grid's when only part of it is stored
    (default: the stored runs).
    """
    columns = ["budget_minutes", "as_run", "model", "train_size", "n_runs", "epochs_median", "valid_roc_auc",
               "valid_pr_auc", "still_improving"]
    if curves.empty:
        return pd.DataFrame(columns=columns)
    curves = curves.sort_values(["run_id", "epoch"]).copy()
    curves["elapsed"] = curves.groupby("run_id")["seconds"].cumsum()
    n_runs = max(study_runs or 0, curves["run_id"].nunique())
    measured = curves.groupby("run_id")["seconds"].sum().sum() / max(jobs, 1) / 60
    rows = []
    for budget in [*budgets, None]:
        share = None if budget is None else budget * 60 * max(jobs, 1) / n_runs
        kept = []
        for run_id, curve in curves.groupby("run_id"):
            done = curve if share is None else curve[curve["elapsed"] <= share]
            if done.empty:
                kept.append({"run_id": run_id, "epochs": 0, "valid_roc_auc": np.nan, "valid_pr_auc": np.nan,
                             "still_improving": True, **curve.iloc[0][["model", "train_size"]].to_dict()})
                continue
            best = done.loc[done["valid_loss"].idxmin()]
            finished = int(done["epoch"].max())
            kept.append({"run_id": run_id, "epochs": finished, "valid_roc_auc": 100 * best["valid_roc_auc"],
                         "valid_pr_auc": 100 * best["valid_pr_auc"],
                         "still_improving": share is not None and int(best["epoch"]) > finished - patience,
                         "model": best["model"], "train_size": best["train_size"]})
        kept = pd.DataFrame(kept)
        for (model, size), group in kept.groupby(["model", "train_size"]):
            rows.append({"budget_minutes": round(measured if budget is None else budget, 1), "as_run": budget is None,
                         "model": model,
                         "train_size": int(size), "n_runs": len(group), "epochs_median": group["epochs"].median(),
                         "valid_roc_auc": group["valid_roc_auc"].mean(), "valid_pr_auc": group["valid_pr_auc"].mean(),
                         "still_improving": int(group["still_improving"].sum())})
    return pd.DataFrame(rows, columns=columns)


# ---- the tables as sentences -------------------------------------------------------------------------------
def _metric_name(metric: str) -> str:
    """How a sentence names a metric, as the paper prints it: ROC-AUC, PR-AUC, √MSE."""
    return metric.replace("_", "-").upper().replace("RMSE", "√MSE")


def _oriented(difference: float, low: float, high: float, sign: float) -> tuple[float, float, float]:
    """A difference a - b and its interval, read as b - a when ``sign`` is negative: the signs flip and the
    bounds swap, so a sentence states the difference and its interval in the direction it names."""
    return (difference, low, high) if sign > 0 else (-difference, -high, -low)


def _steeper(crossing, level: str) -> str:
    """Which line improves faster with data (``better_with_more_data``), and by how much per decade: the
    slopes' difference oriented as that front-end minus the other, negated for √MSE (lower is better) so
    that a positive gap always means "improves faster"."""
    lower = crossing.metric in LOWER_IS_BETTER
    sign = (1.0 if crossing.better_with_more_data == crossing.a else -1.0) * (-1.0 if lower else 1.0)
    gap, low, high = _oriented(crossing.slope_difference, crossing.slope_difference_lo,
                               crossing.slope_difference_hi, sign)
    digits, unit = (4, "") if lower else (2, " points")
    return (f"the steeper {'fall' if lower else 'rise'} is {crossing.better_with_more_data}'s, by {gap:.{digits}f}"
            f"{unit} per decade ({level} interval [{low:.{digits}f}, {high:.{digits}f}])")


def _and(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _where(found: Sequence[tuple[str, str]]) -> str:
    """(front-end, metric) verdicts as one phrase grouped by front-end, in the order found:
    'for the spectrogram on ROC-AUC and PR-AUC, and for the waveform on √MSE'."""
    by_model: dict[str, list[str]] = {}
    for model, metric in found:
        by_model.setdefault(model, []).append(metric)
    return ", and ".join(f"for the {model} on {_and(metrics)}" for model, metrics in by_model.items())


def facts(cells: pd.DataFrame, pairs: pd.DataFrame, slopes: pd.DataFrame, crossings: pd.DataFrame,
          records: pd.DataFrame, *, confidence: float = 0.95, paper_fits: pd.DataFrame | None = None) -> str:
    """What the stored runs show, as markdown sentences built from the tables (no number typed in).

    Per size: which front-end is ahead in ROC-AUC and PR-AUC and whether the paired interval
    excludes zero; the slopes and the crossover; the baseline where it was trained; convergence;
    and, given the lines fitted to the paper's Table 1 (``report.data_scale_fits``), whether the
    runs agree with the paper about which front-end gains more from data.
    """
    level = f"{100 * confidence:.0f} %"
    lines = []
    for size, group in pairs[(pairs["a"] == "waveform") & (pairs["b"] == "spectrogram")].groupby("train_size"):
        parts = []
        for row in group[group["metric"].isin(PERCENT)].itertuples():
            ahead, sign = (row.a, 1.0) if row.difference > 0 else (row.b, -1.0)  # the table holds a - b
            lead, low, high = _oriented(row.difference, row.difference_lo, row.difference_hi, sign)
            sure = "excludes" if low > 0 or high < 0 else "includes"
            parts.append(f"{_metric_name(row.metric)} {ahead} ahead by {lead:.2f} points "
                         f"({level} interval [{low:.2f}, {high:.2f}], {sure} 0, p = {row.p:.3f})")
        lines.append(f"- **{size:,} clips**: " + "; ".join(parts) + ".")
    for row in slopes[slopes["metric"].isin(PERCENT)].itertuples():
        lines.append(f"- {row.model} {_metric_name(row.metric)} gains {row.slope:.2f} points per decade of "
                     f"training data ({level} interval [{row.slope_lo:.2f}, {row.slope_hi:.2f}]).")
    for row in crossings.itertuples():
        where = row.where if not np.isfinite(row.crossover) else \
            f"{row.where}, at {row.crossover:,.0f} clips ([{row.crossover_lo:,.0f}, {row.crossover_hi:,.0f}])"
        lines.append(f"- {_metric_name(row.metric)} lines of {row.a} and {row.b}: {where}; {_steeper(row, level)}.")
    if paper_fits is not None:
        lines += _paper_agreement(crossings, paper_fits)
    baseline = cells[cells["model"] == BASELINE]
    for row in baseline.itertuples():
        best = cells[(cells["train_size"] == row.train_size) & cells["model"].isin(FRONT_ENDS)]
        if len(best):
            top = best.loc[best["roc_auc"].idxmax()]
            lines.append(f"- GBT baseline at {row.train_size:,} clips: ROC-AUC {row.roc_auc:.2f}, PR-AUC {row.pr_auc:.2f}; "
                         f"best front-end there ({top['model']}) {top['roc_auc']:.2f} and {top['pr_auc']:.2f}.")
    if len(records):
        capped = int(records["capped_while_improving"].sum())
        stopped = int((records["stop_reason"] == "early stopping").sum())
        lines.append(f"- Convergence: {stopped} of {len(records)} network runs ended by early stopping; {capped} ended "
                     f"at the epoch cap while still improving.")
    return "\n".join(lines)


def _paper_agreement(crossings: pd.DataFrame, paper_fits: pd.DataFrame) -> list[str]:
    """One sentence per AUC: the paper's steeper front-end against ours, said plainly when they differ."""
    lines = []
    paper = paper_fits[paper_fits["source"].str.startswith("paper") & paper_fits["model"].isin(FRONT_ENDS)]
    for row in crossings[crossings["metric"].isin(PERCENT)].itertuples():
        theirs = paper[(paper["metric"] == row.metric)].dropna(subset=["slope_per_decade"])
        if len(theirs) < 2:
            continue
        steeper = theirs.loc[theirs["slope_per_decade"].idxmax(), "model"]
        name = _metric_name(row.metric)
        if row.where.startswith("not placed"):
            verdict = "here the two slopes cannot be told apart, so these runs neither confirm nor contradict it"
        elif row.better_with_more_data == steeper:
            verdict = f"here too ({row.better_with_more_data}), as in the paper"
        else:
            verdict = (f"here it is the {row.better_with_more_data}'s: on this corpus the runs disagree with the "
                       f"paper")
        lines.append(f"- The paper's Table 1: the {steeper} {name} line is the steeper; {verdict}.")
    return lines


def _loss_verdicts(pairs: pd.DataFrame, default: str, level: str
                   ) -> tuple[list[str], dict[str, dict[str, list[tuple[str, str]]]]]:
    """A sentence per (front-end, metric) for every other loss minus ``default``, and where each other loss is
    better or worse with an interval that excludes zero: loss -> better / worse -> [(front-end, metric)]."""
    lines: list[str] = []
    verdicts: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for row in pairs.itertuples():
        if default not in (row.a, row.b) or row.a == row.b:
            continue
        other, sign = (row.a, 1.0) if row.b == default else (row.b, -1.0)  # oriented as other - default
        diff, low, high = _oriented(row.difference, row.difference_lo, row.difference_hi, sign)
        gain = -diff if row.metric in LOWER_IS_BETTER else diff  # > 0: the other loss is better
        sure = low > 0 or high < 0
        name = _metric_name(row.metric)
        digits = 4 if row.metric in LOWER_IS_BETTER else 2
        said = ("better" if gain > 0 else "worse") if sure else "not told apart"
        lines.append(f"- {row.model}, {name}: {other} − {default} = {diff:+.{digits}f} ({level} interval "
                     f"[{low:.{digits}f}, {high:.{digits}f}], p = {row.p:.3f}): {said}.")
        if sure:
            verdicts.setdefault(other, {"better": [], "worse": []})[said].append((row.model, name))
    return lines, verdicts


def _rule_winners(verdicts: dict[str, dict[str, list[tuple[str, str]]]]) -> list[str]:
    """The losses the rule admits: better somewhere, worse nowhere."""
    return [loss for loss, found in verdicts.items() if found["better"] and not found["worse"]]


def loss_choice(pairs: pd.DataFrame, default: str) -> str:
    """The loss the rule picks against ``default``: the one other loss better somewhere (an interval that
    excludes zero) and worse nowhere; ``default`` when there is none, or several to choose between."""
    winners = _rule_winners(_loss_verdicts(pairs, default, "")[1])
    return winners[0] if len(winners) == 1 else default


def loss_reading(pairs: pd.DataFrame, default: str, *, confidence: float = 0.95) -> str:
    """The loss ablation's verdict on ``default``, the loss it judges, as markdown sentences built from the
    paired table (:func:`contrasts` with ``vary="loss"``): every other loss minus the default, per front-end
    and metric, and the rule applied (:func:`loss_choice`)."""
    lines, verdicts = _loss_verdicts(pairs, default, f"{100 * confidence:.0f} %")
    if not lines:
        return ""
    winners = _rule_winners(verdicts)
    mixed = [loss for loss, found in verdicts.items() if found["better"] and found["worse"]]
    losers = [loss for loss, found in verdicts.items() if found["worse"] and not found["better"]]
    if len(winners) == 1:
        (loss,) = winners
        lines.append(f"- **By the rule, {loss} replaces `{default}`**: it is better than `{default}` "
                     f"{_where(verdicts[loss]['better'])}, with an interval that excludes zero, and worse nowhere.")
    elif winners:
        said = "; ".join(f"{loss} is better than `{default}` {_where(verdicts[loss]['better'])}" for loss in winners)
        lines.append(f"- **Several losses beat `{default}`** with an interval that excludes zero, and lose nowhere: "
                     f"{said}. The rule lets any of them replace it; their paired differences above choose.")
    elif mixed:
        said = [f"{loss} is better than `{default}` {_where(verdicts[loss]['better'])}, but worse "
                f"{_where(verdicts[loss]['worse'])}" for loss in mixed]
        said += [f"{loss} is worse than `{default}` {_where(verdicts[loss]['worse'])}" for loss in losers]
        lines.append(f"- **The runs disagree**: {'; '.join(said)}. Such opposite verdicts are what a rerun's variation "
                     f"looks like when the intervals cover test clips only: the default `{default}` stays until the "
                     f"grid's seeds decide.")
    else:
        beaten = ", and than ".join(f"{loss} {_where(verdicts[loss]['worse'])}" for loss in losers)
        lines.append(f"- **No other loss beats `{default}`** with an interval that excludes zero"
                     + (f"; `{default}` is better than {beaten}." if losers else "."))
    return "\n".join(lines)


def capped_runs(records: pd.DataFrame) -> list[str]:
    """Run ids that measure the cap, not the model (for a visible flag in reports)."""
    return list(records.loc[records["capped_while_improving"], "run_id"])


__all__ = ["BASELINE", "CELL", "FRONT_ENDS", "PAIRS", "budget_tradeoff", "capped_runs", "contrasts", "difference", "facts", "cell_draws", "cell_table", "learning_curves", "loss_choice", "loss_reading",
           "paired_differences", "plot_learning_curves", "resample_runs", "scaling_fits", "stop_table",
           "training_records"]
