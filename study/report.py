"""Tables and figures drawn from the results store only, beside the paper's printed numbers.

Table 1 and Figure 3 (§5.1, the data-scale study), Tables 2-3 (§5.2, MTT capacity), Table 4
(§5.3, MSD) and the views of one run (01_experiment); the qualitative checks of §5.1 are in
:mod:`study.qualitative`, the tour's views of data and models in :mod:`study.tour`.  Every
function takes the runs table of :func:`study.results.load_runs` (or one run's predictions), so
no number reaches a table or a figure except from a stored run or from :mod:`study.paper`.
The paper's numbers are always labelled 'paper'; ROC-AUC and PR-AUC are shown in %, as printed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib.ticker
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy import stats

from study.config import EXECUTION_ONLY, RunConfig, preset_config
from study.metrics import METRICS
from study.models import GBT, build_model, count_params
from study.paper import printed_range
from study.paths import resolve_path
from study.results import read_json

LABELS = {"roc_auc": "ROC-AUC (%)", "pr_auc": "PR-AUC (%)", "rmse": "√MSE"}
PERCENT = ("roc_auc", "pr_auc")  # shown x100, as the paper prints them
LOWER_IS_BETTER = ("rmse",)
FRONT_ENDS = ("waveform", "spectrogram")
BASELINE = GBT
MODEL_NAMES = {"waveform": "Waveform", "spectrogram": "Spectrogram", "gbt": "Baseline (GBT + descriptors)"}
COLORS = {"waveform": "tab:blue", "spectrogram": "tab:orange", "gbt": "0.35"}
COUNT_COLUMNS = ("train_size", "params", "crossover_train_size", "crossover")  # shown as whole numbers
# config fields that say where or how fast a run ran, not what it computed: ignored when matching
NEUTRAL_FIELDS = ("name", *(name for names in EXECUTION_ONLY.values() for name in names))


# ---- selecting and summarising runs ----------------------------------------------------------
def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def config_key(flat: Mapping[str, Any], *, ignore: Iterable[str] = ()) -> tuple:
    """What makes two runs the same experiment: every config field except the neutral/ignored ones."""
    skip = set(NEUTRAL_FIELDS) | set(ignore)
    return tuple((name, _plain(flat[name])) for name in RunConfig.flat_fields() if name not in skip)


def select_runs(runs: pd.DataFrame, configs: Iterable[RunConfig], *, ignore: Iterable[str] = ()) -> pd.DataFrame:
    """The runs whose config equals one of ``configs`` (up to neutral fields and ``ignore``).

    The same experiment stored twice (e.g. under run ids from an older config schema) counts
    once: the most recently created run is kept.
    """
    ignore = tuple(ignore)
    wanted = {config_key(cfg.flat(), ignore=ignore) for cfg in configs}
    if runs.empty:
        return runs.copy()
    records = runs.to_dict("records")
    chosen = runs[[config_key(row, ignore=ignore) in wanted for row in records]]
    identity = pd.Series([config_key(row) for row in chosen.to_dict("records")], index=chosen.index, dtype=object)
    if "created" in chosen:
        order = chosen["created"].fillna("").astype(str).sort_values(kind="stable").index
        identity = identity.loc[order]
    latest = identity[~identity.duplicated(keep="last")].index
    return runs.loc[sorted(latest)].reset_index(drop=True)


def grid_runs(runs: pd.DataFrame, grid) -> pd.DataFrame:
    """The stored runs of a grid's points (see :mod:`study.batch`), however many have finished."""
    return select_runs(runs, grid.configs())


def choose_run(runs: pd.DataFrame, *, model: str, train_size: int | None = None, seed: int | None = None) -> pd.Series:
    """One run of a model: at ``train_size`` (None: the largest available) and ``seed`` (None: the lowest)."""
    mine = runs[runs["model"] == model]
    if train_size is not None:
        mine = mine[mine["train_size"] == train_size]
    elif len(mine):
        mine = mine[mine["train_size"] == mine["train_size"].max()]
    if seed is not None:
        mine = mine[mine["seed"] == seed]
    if mine.empty:
        raise LookupError(f"no stored run of model {model!r} with train_size={train_size}, seed={seed}; "
                          f"stored: {sorted(set(zip(runs['model'], runs['train_size'], runs['seed'])))}")
    return mine.sort_values(["seed", "run_id"]).iloc[0]


def summarise(runs: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean and sd over seeds of each metric per group; AUCs in %, as the paper prints them."""
    by = list(by)
    columns = by + ["n_runs"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "sd")]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    grouped = _percent(runs).groupby(by, sort=True, dropna=False)
    table = grouped.size().rename("n_runs").to_frame()
    for metric in METRICS:
        table[f"{metric}_mean"] = grouped[metric].mean()
        table[f"{metric}_sd"] = grouped[metric].std(ddof=1)  # NaN for a single run
    return table.reset_index()[columns]


def preset_differences(preset: str | RunConfig, reference: str = "paper") -> pd.DataFrame:
    """The fields in which a preset, or a grid's configuration (its preset and overrides), departs from the
    paper's configuration (how it was scaled down)."""
    config = preset if isinstance(preset, RunConfig) else preset_config(preset)
    preset = config.name
    ours, theirs = config.flat(), preset_config(reference).flat()
    rows = [{"field": name, preset: str(ours[name]), reference: str(theirs[name])}
            for name in ours if name not in ("name", "cache_dir") and ours[name] != theirs[name]]
    return pd.DataFrame(rows, columns=["field", preset, reference])


# ---- the paper's numbers ---------------------------------------------------------------------
def paper_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A paper table (list of dicts from :mod:`study.paper`) as a frame; AUCs in % as printed."""
    frame = pd.DataFrame([{**row, "model_key": paper_model(row)} for row in rows],
                         columns=None if len(rows) else ["row", "model", "model_key", "train_size", *METRICS])
    for metric in METRICS:
        if metric not in frame:
            frame[metric] = np.nan
        frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    return frame


def paper_overrides(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The config overrides that make a paper row one of our runs (``config``); None for cited rows."""
    value = row.get("config")
    return dict(value) if value else None


def paper_model(row: Mapping[str, Any]) -> str:
    """Our model name for a paper row ('waveform', 'spectrogram', 'gbt', ...), else its display name."""
    return (paper_overrides(row) or {}).get("model", str(row.get("model")))


def printed_params(text: Any) -> float:
    """A printed parameter count ('5.3M', '277k') as its lower bound (the paper truncates); NaN if none."""
    return float("nan") if _missing(text) or not text else float(printed_range(str(text))[0])


# ---- writing tables and figures --------------------------------------------------------------
def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """Display form: '<metric>_mean' and '<metric>_sd' become one 'mean ± sd' column, 'X' with 'X_lo' and
    'X_hi' one 'X [lo, hi]' column; metrics get 2 decimals (4 for √MSE), counts are whole numbers,
    other numbers 4 significant digits; NaN is '—'."""
    shown = pd.DataFrame(index=table.index)
    for column in table.columns:
        if column.endswith("_sd") and f"{column[:-3]}_mean" in table:
            continue
        if column.endswith(("_lo", "_hi")) and column[:-3] in table and f"{column[:-3]}_lo" in table \
                and f"{column[:-3]}_hi" in table:
            continue
        if f"{column}_lo" in table and f"{column}_hi" in table:
            shown[column] = [_with_interval(v, lo, hi, column) for v, lo, hi in
                             zip(table[column], table[f"{column}_lo"], table[f"{column}_hi"])]
        elif column.endswith("_mean"):
            metric = column[:-len("_mean")]
            sds = table[f"{metric}_sd"] if f"{metric}_sd" in table else [None] * len(table)
            shown[metric] = [_mean_sd(m, s, _decimals(metric)) for m, s in zip(table[column], sds)]
        elif column in COUNT_COLUMNS or column.startswith("n_"):
            shown[column] = ["—" if _missing(v) else f"{float(v):,.0f}" for v in table[column]]
        elif column.endswith(METRICS):  # e.g. the paper's own figures: as many decimals as it prints
            shown[column] = [_mean_sd(v, None, _decimals(column)) for v in table[column]]
        elif pd.api.types.is_float_dtype(table[column]):
            shown[column] = ["—" if _missing(v) else f"{v:.4g}" for v in table[column]]
        else:
            shown[column] = ["—" if _missing(v) else str(v) for v in table[column]]
    return shown


def _with_interval(value: Any, low: Any, high: Any, column: str) -> str:
    if _missing(value):
        return "—"
    if column in COUNT_COLUMNS:
        shown = [f"{float(v):,.0f}" if not _missing(v) else "—" for v in (value, low, high)]
    elif column in METRICS:
        shown = [f"{v:.{_decimals(column)}f}" if not _missing(v) else "—" for v in (value, low, high)]
    else:
        shown = [f"{v:.3g}" if not _missing(v) else "—" for v in (value, low, high)]
    return f"{shown[0]} [{shown[1]}, {shown[2]}]"


def _decimals(metric: str) -> int:
    return 4 if metric.endswith("rmse") else 2


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _mean_sd(mean: Any, sd: Any, digits: int) -> str:
    if _missing(mean):
        return "—"
    return f"{mean:.{digits}f}" + ("" if _missing(sd) else f" ± {sd:.{digits}f}")


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (written here: pandas' to_markdown needs an extra package)."""
    shown = format_table(table)
    cells = [[str(c) for c in shown.columns]] + [[str(v).replace("|", "\\|") for v in row] for row in shown.values]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in cells[0]) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    if len(cells) == 1:
        lines.append("\n(no rows)")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, name: str, tables_dir: str | Path = "results/tables", *,
                caption: str = "") -> tuple[Path, Path]:
    """``<tables_dir>/<name>.csv`` (numbers) and ``.md`` (mean ± sd, for reading); see :mod:`study.paths`."""
    folder = resolve_path(tables_dir)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"{name}.csv"
    table.to_csv(csv_path, index=False)
    return csv_path, write_text(to_markdown(table), name, folder, caption=caption)


def write_text(text: str, name: str, tables_dir: str | Path = "results/tables", *, caption: str = "") -> Path:
    """``<tables_dir>/<name>.md``: sentences built from the tables (e.g. :func:`study.scaling.facts`)."""
    folder = resolve_path(tables_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text((f"{caption}\n\n" if caption else "") + text.rstrip() + "\n")
    return path


def save_figure(figure: plt.Figure, name: str, figures_dir: str | Path = "figures") -> tuple[Path, Path]:
    """``<figures_dir>/<name>.png`` and ``.pdf``, without creation dates, so equal results give equal files."""
    folder = resolve_path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    figure.savefig(png, dpi=150, bbox_inches="tight")
    figure.savefig(pdf, dpi=150, bbox_inches="tight", metadata={"CreationDate": None})
    return png, pdf


# ---- Table 1 and Figure 3: performance against training-set size (§5.1) ----------------------
def table1(runs: pd.DataFrame, paper_rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The paper's Table 1 rows as printed, then ours (mean ± sd over seeds), largest training set first.

    ``model`` is our model name (gbt, waveform, spectrogram) for both; ``label`` is how it reads.
    """
    paper = paper_frame(paper_rows)
    paper_table = pd.DataFrame({"source": "paper (Table 1)", "model": paper["model_key"], "label": paper["row"],
                                "train_size": paper["train_size"], "n_runs": np.nan})
    for metric in METRICS:
        paper_table[f"{metric}_mean"], paper_table[f"{metric}_sd"] = paper[metric].to_numpy(), np.nan
    ours = summarise(runs, ["model", "train_size"])
    order = {name: i for i, name in enumerate((BASELINE,) + FRONT_ENDS)}
    ours = ours.assign(_size=-ours["train_size"].astype(float),
                       _model=ours["model"].map(lambda m: order.get(m, len(order))))
    ours = ours.sort_values(["_size", "_model"], kind="stable").drop(columns=["_size", "_model"])
    ours.insert(0, "source", "ours")
    ours.insert(2, "label", ours["model"].map(lambda m: MODEL_NAMES.get(m, m)))
    return pd.concat([paper_table, ours], ignore_index=True)


@dataclass(frozen=True)
class LinearFit:
    """Ordinary least squares of a metric on log10(training-set size), as Figure 3 draws it."""

    slope: float
    intercept: float
    n: int
    x_mean: float
    sxx: float
    residual_sd: float

    def predict(self, train_size: np.ndarray | float) -> np.ndarray:
        return self.intercept + self.slope * np.log10(train_size)

    def band(self, train_size: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Confidence band of the fitted mean (t-based); NaN when the fit has no residual degrees of freedom."""
        x = np.log10(np.asarray(train_size, dtype=float))
        if self.n <= 2 or self.sxx <= 0:
            nan = np.full_like(x, np.nan)
            return nan, nan
        half = stats.t.ppf(0.5 + confidence / 2, self.n - 2) * self.residual_sd * np.sqrt(
            1 / self.n + (x - self.x_mean) ** 2 / self.sxx)
        centre = self.predict(10 ** x)
        return centre - half, centre + half

    def slope_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        if self.n <= 2 or self.sxx <= 0:
            return float("nan"), float("nan")
        half = stats.t.ppf(0.5 + confidence / 2, self.n - 2) * self.residual_sd / math.sqrt(self.sxx)
        return self.slope - half, self.slope + half


def fit_line(train_sizes: Sequence[float], values: Sequence[float]) -> LinearFit | None:
    """Fit value = intercept + slope * log10(train size); None with fewer than two distinct sizes."""
    x, y = np.log10(np.asarray(train_sizes, dtype=float)), np.asarray(values, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 2:
        return None
    x_mean, sxx = x.mean(), float(((x - x.mean()) ** 2).sum())
    slope = float(((x - x_mean) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * x_mean)
    residuals = y - (intercept + slope * x)
    residual_sd = math.sqrt(float((residuals ** 2).sum()) / (len(x) - 2)) if len(x) > 2 else float("nan")
    return LinearFit(slope, intercept, len(x), float(x_mean), sxx, residual_sd)


def crossover(fit_a: LinearFit | None, fit_b: LinearFit | None) -> float | None:
    """Training-set size where two fitted lines meet; None when either is missing or they are parallel."""
    if fit_a is None or fit_b is None or math.isclose(fit_a.slope, fit_b.slope, rel_tol=1e-12, abs_tol=1e-15):
        return None
    log_size = (fit_b.intercept - fit_a.intercept) / (fit_a.slope - fit_b.slope)
    return float(10 ** log_size) if abs(log_size) < 300 else None


def _fits_by_model(points: pd.DataFrame, metric: str) -> dict[str, LinearFit | None]:
    return {model: fit_line(points.loc[points["model"] == model, "train_size"],
                            points.loc[points["model"] == model, metric]) for model in FRONT_ENDS}


def _percent(runs: pd.DataFrame) -> pd.DataFrame:
    scaled = runs.copy()
    for metric in PERCENT:
        scaled[metric] = 100.0 * scaled[metric]
    return scaled


def _paper_points(paper_rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    paper = paper_frame(paper_rows)
    paper["model"] = paper["model_key"]
    return paper


def data_scale_fits(runs: pd.DataFrame, paper_rows: Sequence[Mapping[str, Any]] = (), *,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Figure 3's lines as numbers: slope per decade of data (with CI), fit quality and crossover.

    Ours are fitted to every run (each seed a point); the paper's to its Table 1 means.
    ``better_above`` names the front-end whose line is better at sizes beyond the crossover.
    """
    rows = []
    for source, points in (("ours", _percent(runs)), ("paper (Table 1)", _paper_points(paper_rows))):
        if points.empty:
            continue
        for metric in METRICS:
            fits = _fits_by_model(points, metric)
            meet = crossover(fits["waveform"], fits["spectrogram"])
            better = None
            if meet is not None:
                above = {m: fits[m].predict(meet * 10) for m in FRONT_ENDS}
                pick = min if metric in LOWER_IS_BETTER else max
                better = pick(above, key=above.get)
            for model, fit in fits.items():
                low, high = fit.slope_interval(confidence) if fit else (np.nan, np.nan)
                rows.append({"source": source, "metric": metric, "model": model,
                             "n_points": fit.n if fit else 0,
                             "slope_per_decade": fit.slope if fit else np.nan,
                             "slope_lo": low, "slope_hi": high,
                             "intercept": fit.intercept if fit else np.nan,
                             "crossover_train_size": np.nan if meet is None else meet,
                             "better_above_crossover": better})
    return pd.DataFrame(rows, columns=["source", "metric", "model", "n_points", "slope_per_decade", "slope_lo",
                                       "slope_hi", "intercept", "crossover_train_size", "better_above_crossover"])


def plot_data_scale(runs: pd.DataFrame, paper_rows: Sequence[Mapping[str, Any]] = (), *, confidence: float = 0.95,
                    title: str = "ours") -> plt.Figure:
    """Figure 3: each metric against training-set size (log x), ours on top and the paper's below.

    Dots: single runs; bars: mean ± sd over seeds; lines: least-squares fits in log10(size) with
    their confidence band; grey: the GBT baseline (mean ± sd); dotted: where the two fits cross.
    """
    panels = [(title, _percent(runs), True)]
    if len(paper_rows):
        panels.append(("paper (Table 1, 1.2M-songs)", _paper_points(paper_rows), False))
    figure, axes = plt.subplots(len(panels), len(METRICS), figsize=(4.2 * len(METRICS), 3.6 * len(panels)),
                                squeeze=False)
    for row, (label, points, ours) in enumerate(panels):
        for column, metric in enumerate(METRICS):
            _draw_metric(axes[row, column], points, metric, confidence=confidence, bands=ours)
            axes[row, column].set_title(f"{label}: {LABELS[metric]}", fontsize=9)
    legend = {}  # label -> handle, from every panel (a panel without runs has none)
    for ax in axes.flat:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    if legend:
        figure.legend(list(legend.values()), list(legend), loc="lower center", ncol=len(legend), fontsize=8,
                      frameon=False)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    return figure


def _draw_metric(ax: plt.Axes, points: pd.DataFrame, metric: str, *, confidence: float, bands: bool) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("training-set size (clips)")
    ax.set_ylabel(LABELS[metric])
    points = points[np.isfinite(pd.to_numeric(points[metric], errors="coerce"))] if len(points) else points
    if points.empty:
        ax.text(0.5, 0.5, "no runs with this metric", transform=ax.transAxes, ha="center", va="center")
        return
    sizes = points.loc[points["model"].isin(FRONT_ENDS), "train_size"].astype(float)
    span = np.geomspace(sizes.min() / 1.5, sizes.max() * 1.5, 100) if len(sizes) else None
    baseline = points[points["model"] == BASELINE]
    if baseline["train_size"].nunique() > 1:  # the baseline trained at several sizes: its own dashed line
        cells = baseline.groupby("train_size")[metric].mean().reset_index()
        ax.plot(cells["train_size"], cells[metric], "s--", color=COLORS[BASELINE], markersize=4,
                label=MODEL_NAMES[BASELINE])
    elif len(baseline):  # one size (e.g. the paper's 1.2M): a horizontal line, its spread over seeds shaded
        values = baseline[metric].astype(float)
        mean, sd = values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0
        ax.axhline(mean, color=COLORS[BASELINE], linestyle="--", label=MODEL_NAMES[BASELINE])
        if sd > 0:
            ax.axhspan(mean - sd, mean + sd, color=COLORS[BASELINE], alpha=0.12, linewidth=0)
    fits = _fits_by_model(points, metric)
    for model in FRONT_ENDS:
        mine = points[points["model"] == model]
        if mine.empty:
            continue
        color = COLORS[model]
        ax.scatter(mine["train_size"], mine[metric], s=10, color=color, alpha=0.35, linewidth=0)
        cells = mine.groupby("train_size")[metric].agg(["mean", "std"]).reset_index()
        ax.errorbar(cells["train_size"], cells["mean"], yerr=cells["std"].fillna(0.0), fmt="o", color=color,
                    capsize=3, markersize=4, label=MODEL_NAMES[model])
        if "capped_while_improving" in mine:  # a run that measures its epoch cap, not the model: flagged
            capped = mine[mine["capped_while_improving"].fillna(False).astype(bool)]
            if len(capped):
                ax.scatter(capped["train_size"], capped[metric], s=40, marker="x", color="red",
                           label="capped while still improving")
        if fits[model] is not None and span is not None:
            ax.plot(span, fits[model].predict(span), color=color, linewidth=1.2)
            if bands:
                low, high = fits[model].band(span, confidence)
                if np.isfinite(low).all():
                    ax.fill_between(span, low, high, color=color, alpha=0.15, linewidth=0)
    if span is not None:
        ax.set_xlim(span[0], span[-1])  # explicit: a single trained size leaves log autoscaling nothing to span
        trained = np.unique(sizes)
        ax.set_xticks(trained, [_size_label(size) for size in trained])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    meet = crossover(fits["waveform"], fits["spectrogram"])
    if meet is not None and span is not None and span[0] <= meet <= span[-1]:
        ax.axvline(meet, color="0.2", linestyle=":", linewidth=1)
        ax.annotate(f"fits cross at\n≈{_size_label(meet)} clips", xy=(meet, 0.96), xycoords=("data", "axes fraction"),
                    fontsize=7, ha="center", va="top", backgroundcolor="white")
    elif fits["waveform"] is not None and fits["spectrogram"] is not None:
        where = "parallel fits" if meet is None else f"fits cross outside the plot (≈{_size_label(meet)} clips)"
        ax.text(0.02, 0.96, where, transform=ax.transAxes, fontsize=7, va="top", backgroundcolor="white")


def _size_label(size: float) -> str:
    if size >= 1e9:
        return f"{size:.1e}"
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if size >= scale:
            return f"{size / scale:.3g}{suffix}"
    return f"{size:.3g}"


# ---- Tables 2-4: the paper's rows beside our runs of the same configuration --------------------
def paper_comparison(runs: pd.DataFrame, paper_rows: Sequence[Mapping[str, Any]], base: RunConfig, *,
                     count_parameters: bool = True) -> pd.DataFrame:
    """One line per paper row: the paper's figures, then ours (mean ± sd over seeds) where we run it.

    ``base`` is the configuration every row starts from (the grid's preset and overrides); a row's
    ``config`` from :mod:`study.paper` makes it ours.  ``params`` counts the model we run, for the
    row's output size (``n_tags``: 50 for MTT and MSD).
    """
    lines = []
    for row in paper_rows:
        overrides = paper_overrides(row)
        line = {"table": row.get("table"), "row": row.get("row"),
                "paper_roc_auc": _float(row.get("roc_auc")), "paper_pr_auc": _float(row.get("pr_auc")),
                "paper_params": row.get("params")}
        cell, params = None, np.nan
        if overrides:
            cfg = base.with_overrides(**overrides)
            mine = select_runs(runs, [cfg], ignore=("seed",))
            cell = summarise(mine, ["model"]).iloc[0] if len(mine) else None
            params = _count_params(cfg, row.get("n_tags")) if count_parameters else np.nan
        line["n_runs"] = 0 if cell is None else int(cell["n_runs"])
        for metric in ("roc_auc", "pr_auc"):
            for stat in ("mean", "sd"):
                line[f"{metric}_{stat}"] = np.nan if cell is None else float(cell[f"{metric}_{stat}"])
        line["params"] = params
        lines.append(line)
    return pd.DataFrame(lines)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _count_params(cfg: RunConfig, n_tags: int | None) -> float:
    """Trainable parameters of the model a config builds, counted on the 'meta' device (no weights)."""
    if n_tags is None:
        return float("nan")
    with torch.device("meta"):
        return float(count_params(build_model(cfg.model, n_tags=n_tags, audio_cfg=cfg.audio)))


def plot_capacity(tables: Mapping[str, pd.DataFrame]) -> plt.Figure:
    """ROC-AUC against parameter count for each capacity table: the paper's rows and ours."""
    figure, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 4), squeeze=False)
    for ax, (title, table) in zip(axes[0], tables.items()):
        printed = table["paper_params"].map(printed_params)
        ax.scatter(printed, table["paper_roc_auc"], facecolors="none", edgecolors="k", label="paper")
        mine = table[np.isfinite(table["roc_auc_mean"].astype(float))]
        if len(mine):
            ax.errorbar(mine["params"].astype(float), mine["roc_auc_mean"].astype(float),
                        yerr=mine["roc_auc_sd"].astype(float).fillna(0.0), fmt="o", color="tab:red", capsize=3,
                        label="ours")
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel(LABELS["roc_auc"])
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


# ---- one run (01_experiment) -----------------------------------------------------------------
def run_overview(run_dir: str | Path) -> pd.DataFrame:
    """One line per metric of a stored run: value and bootstrap interval (AUCs in %)."""
    metrics = read_json(run_dir, "metrics.json")
    rows = []
    for metric in METRICS:
        scale = 100.0 if metric in PERCENT else 1.0
        value = metrics["overall"].get(metric)
        low, high = (metrics.get("ci") or {}).get(metric) or (None, None)
        rows.append({"metric": LABELS[metric], "value": _scaled(value, scale), "ci_lo": _scaled(low, scale),
                     "ci_hi": _scaled(high, scale)})
    return pd.DataFrame(rows)


def _scaled(value: Any, scale: float) -> float:
    return float("nan") if value is None else float(value) * scale


def plot_curve(run_dir: str | Path) -> plt.Figure | None:
    """Training curve of a run: losses per epoch and the validation metrics; None for runs without one (GBT)."""
    path = Path(run_dir) / "curve.csv"
    curve = pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
    if curve.empty or "epoch" not in curve:
        print(f"{Path(run_dir).name}: no training curve (a GBT run, or no epoch finished)")
        return None
    losses = [c for c in curve.columns if c.endswith("_loss")]
    scores = [c for c in curve.columns if c.startswith("valid_") and c not in losses]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for column in losses:
        axes[0].plot(curve["epoch"], curve[column], marker="o", label=column)
    for column in scores:
        axes[1].plot(curve["epoch"], curve[column], marker="o", label=column)
    for ax, label in zip(axes, ("loss", "validation metric")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


__all__ = [
    "LinearFit", "METRICS", "NEUTRAL_FIELDS", "config_key", "crossover",
    "data_scale_fits", "fit_line",
    "format_table", "grid_runs", "paper_comparison", "paper_frame", "paper_model", "paper_overrides",
    "plot_capacity", "plot_curve", "plot_data_scale", "choose_run",
    "preset_differences", "printed_params", "run_overview", "save_figure",
    "select_runs", "summarise", "table1", "to_markdown", "write_table",
]
