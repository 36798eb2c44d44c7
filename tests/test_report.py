"""Tables and figures come from stored runs only: synthetic runs with known trends in, checked numbers out."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from study import paper, qualitative, report, results  # noqa: E402
from study.config import RunConfig  # noqa: E402

SIZES = (10, 30, 100)
SEEDS = (0, 1, 2)
# designed lines in log10(size): waveform steeper, so the fits cross at 10**2 = 100 clips
TREND = {"waveform": (0.60, 0.10), "spectrogram": (0.70, 0.05)}  # (intercept, slope) of ROC-AUC
SEED_NOISE = {0: -0.01, 1: 0.0, 2: 0.01}  # symmetric: the per-cell means lie exactly on the lines


def fake_metrics(model: str, size: int, seed: int) -> dict:
    if model == "gbt":
        roc = 0.78
    else:
        intercept, slope = TREND[model]
        roc = intercept + slope * math.log10(size) + SEED_NOISE[seed]
    return {"overall": {"roc_auc": roc, "pr_auc": roc / 2, "rmse": 1 - roc}, "ci": {"roc_auc": [roc - 0.02, roc + 0.02]},
            "excluded": [], "n_test": 40}


def store_run(results_dir, cfg: RunConfig, metrics: dict, *, overwrite: bool = False, n_clips: int = 6):
    tags = ["rock", "jazz", "piano", "acousticness"]
    rng = np.random.default_rng(cfg.train.seed)
    return results.write_run(
        results_dir, cfg.run_id, config=cfg.to_dict(), metrics=metrics,
        per_tag=pd.DataFrame({"tag": tags, "roc_auc": 0.5}), curve=pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]}),
        protocol={}, provenance={"code": {"git_hash": "x"}},
        predictions={"track_ids": [f"t{i}" for i in range(n_clips)], "y_true": rng.integers(0, 2, (n_clips, 4)),
                     "y_score": rng.random((n_clips, 4)), "tags": tags, "is_regression": [False, False, False, True]},
        overwrite=overwrite)


def study_configs() -> list[RunConfig]:
    configs = [RunConfig.from_flat("smoke", model=m, train_size=n, seed=s)
               for m in ("waveform", "spectrogram") for n in SIZES for s in SEEDS]
    return configs + [RunConfig.from_flat("smoke", model="gbt", train_size=SIZES[-1], seed=0)]


@pytest.fixture()
def stored(tmp_path):
    """A results store with the synthetic data-scale study, and the configs that define it."""
    configs = study_configs()
    for cfg in configs:
        store_run(tmp_path, cfg, fake_metrics(cfg.model.model, cfg.data.train_size, cfg.train.seed))
    return tmp_path, configs


# ---- fits -------------------------------------------------------------------------------------
def test_fit_line_recovers_a_designed_line_and_its_band_narrows_at_the_centre():
    sizes = [10, 10, 100, 100, 1000, 1000]
    values = [1 + 2 * math.log10(n) + e for n, e in zip(sizes, [-0.1, 0.1] * 3)]
    fit = report.fit_line(sizes, values)
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(1.0)
    low, high = fit.band(np.array([10.0, 100.0, 1000.0]))
    width = high - low
    assert (low < fit.predict(np.array([10.0, 100.0, 1000.0]))).all()
    assert width[1] < width[0] and width[1] < width[2]  # narrowest at the mean of log10(size)
    slope_low, slope_high = fit.slope_interval()
    assert slope_low < 2.0 < slope_high


def test_fit_line_without_residual_freedom_has_no_band_and_one_size_has_no_fit():
    fit = report.fit_line([10, 100], [1.0, 2.0])
    assert np.isnan(fit.band(np.array([30.0]))[0]).all()
    assert report.fit_line([10, 10, 10], [1.0, 2.0, 3.0]) is None


def test_crossover_of_designed_lines_and_none_for_parallel_ones():
    wave = report.fit_line([10, 1000], [0.7, 0.9])  # slope 0.1
    spec = report.fit_line([10, 1000], [0.75, 0.85])  # slope 0.05, meets wave at 100
    assert report.crossover(wave, spec) == pytest.approx(100.0)
    assert report.crossover(wave, report.fit_line([10, 1000], [0.8, 1.0])) is None
    assert report.crossover(wave, None) is None


def test_paper_table1_fits_say_the_waveform_line_wins_beyond_the_crossover_in_every_metric():
    fits = report.data_scale_fits(pd.DataFrame(columns=["model", "train_size", *report.METRICS]), paper.TABLE1)
    assert set(fits["source"]) == {"paper (Table 1)"}
    assert (fits["better_above_crossover"] == "waveform").all()  # §5.1: "consistent throughout metrics"
    assert fits["crossover_train_size"].between(100_000, 1_000_000).all()


# ---- Table 1 and Figure 3 from the store ------------------------------------------------------
def test_data_scale_tables_come_from_the_runs_and_follow_an_edited_result(stored, tmp_path):
    results_dir, configs = stored
    runs = report.select_runs(results.load_runs(results_dir), configs)
    assert len(runs) == len(configs)

    table = report.table1(runs, paper.TABLE1)
    csv_path, md_path = report.write_table(table, "table1_data_scale", results_dir / "tables")
    written = pd.read_csv(csv_path)
    ours = written[written["source"] == "ours"]
    wave_100 = ours[(ours["model"] == "waveform") & (ours["train_size"] == 100)].iloc[0]
    assert wave_100["roc_auc_mean"] == pytest.approx(100 * (0.60 + 0.10 * 2))
    assert wave_100["roc_auc_sd"] == pytest.approx(1.0)  # seeds at -1, 0, +1 points
    assert wave_100["n_runs"] == 3
    assert (written[written["source"] == "paper (Table 1)"]["roc_auc_mean"].tolist()
            == [row["roc_auc"] for row in paper.TABLE1])  # the paper's own rows, in its order
    assert "| ours | waveform | Waveform | 100 | 3 | 80.00 ± 1.00 |" in md_path.read_text()

    # change one stored result and regenerate: the change must show, since nothing is typed in
    edited = next(c for c in configs if c.model.model == "waveform" and c.data.train_size == 100 and c.train.seed == 2)
    store_run(results_dir, edited, {**fake_metrics("waveform", 100, 2), "overall": {"roc_auc": 0.50, "pr_auc": 0.25,
                                                                                     "rmse": 0.5}}, overwrite=True)
    runs = report.select_runs(results.load_runs(results_dir), configs)
    csv_path, md_path = report.write_table(report.table1(runs, paper.TABLE1), "table1_data_scale",
                                             results_dir / "tables")
    written = pd.read_csv(csv_path)
    row = written[(written["source"] == "ours") & (written["model"] == "waveform") & (written["train_size"] == 100)]
    assert row["roc_auc_mean"].iloc[0] == pytest.approx(100 * (0.79 + 0.80 + 0.50) / 3)
    assert f"| ours | waveform | Waveform | 100 | 3 | {100 * (0.79 + 0.80 + 0.50) / 3:.2f} ±" in md_path.read_text()
    assert "| ours | waveform | Waveform | 100 | 3 | 80.00 ± 1.00 |" not in md_path.read_text()


def test_data_scale_fits_of_our_runs_find_the_designed_crossover(stored):
    results_dir, configs = stored
    runs = report.select_runs(results.load_runs(results_dir), configs)
    fits = report.data_scale_fits(runs)
    roc = fits[(fits["source"] == "ours") & (fits["metric"] == "roc_auc")].set_index("model")
    assert roc.loc["waveform", "slope_per_decade"] == pytest.approx(10.0)  # in % per decade
    assert roc.loc["spectrogram", "slope_per_decade"] == pytest.approx(5.0)
    assert roc.loc["waveform", "crossover_train_size"] == pytest.approx(100.0)
    assert roc.loc["waveform", "better_above_crossover"] == "waveform"
    rmse = fits[(fits["source"] == "ours") & (fits["metric"] == "rmse")]
    assert (rmse["better_above_crossover"] == "waveform").all()  # lower is better for √MSE


def test_figure3_is_drawn_and_saved_as_png_and_pdf(stored, tmp_path):
    results_dir, configs = stored
    runs = report.select_runs(results.load_runs(results_dir), configs)
    figure = report.plot_data_scale(runs, paper.TABLE1)
    assert len(figure.axes) == 6  # 3 metrics x (ours, paper)
    top_left = figure.axes[0]
    assert top_left.get_xscale() == "log"
    assert any("cross" in text.get_text() for text in top_left.texts)  # the crossover is annotated
    png, pdf = report.save_figure(figure, "fig3_data_scale", tmp_path / "figures")
    assert png.stat().st_size > 0 and pdf.read_bytes()[:4] == b"%PDF"


def test_select_runs_ignores_machine_fields_but_not_settings(tmp_path):
    cfg = RunConfig.from_flat("smoke", model="waveform", train_size=10)
    elsewhere = cfg.with_overrides(data_root="/data/elsewhere", device="cuda")
    longer = cfg.with_overrides(max_epochs=cfg.train.max_epochs + 1)
    for run in (elsewhere, longer):
        store_run(tmp_path, run, fake_metrics("waveform", 10, 0))
    selected = report.select_runs(results.load_runs(tmp_path), [cfg])
    assert selected["run_id"].tolist() == [elsewhere.run_id]


def test_select_runs_counts_an_experiment_stored_twice_once_keeping_the_latest():
    cfg = RunConfig.from_flat("smoke", model="waveform", train_size=10)
    row = {"run_id": "old-id", **cfg.flat(), "roc_auc": 0.5, "created": "2024-01-01T00:00:00"}
    runs = pd.DataFrame([row, {**row, "run_id": "new-id", "roc_auc": 0.7, "created": "2024-02-01T00:00:00"},
                         {**row, "run_id": "other-seed", "seed": 1, "created": "2023-01-01T00:00:00"}])
    selected = report.select_runs(runs, [cfg, cfg.with_overrides(seed=1)])
    assert sorted(selected["run_id"]) == ["new-id", "other-seed"]


# ---- Tables 2-4 --------------------------------------------------------------------------------
def test_paper_comparison_puts_our_runs_beside_the_matching_paper_rows(tmp_path):
    base = RunConfig.from_flat("smoke", dataset="mtt", patch_seconds=3.0)
    row = next(r for r in paper.TABLE3 if r["row"] == "64 CNN filters - 200 units")
    for seed in (0, 1):
        cfg = base.with_overrides(**row["config"], seed=seed)
        store_run(tmp_path, cfg, {"overall": {"roc_auc": 0.9 + seed / 100, "pr_auc": 0.4, "rmse": None}, "n_test": 9})
    table = report.paper_comparison(results.load_runs(tmp_path), paper.TABLE3, base, count_parameters=False)
    assert len(table) == len(paper.TABLE3)
    mine = table[table["row"] == row["row"]].iloc[0]
    assert mine["n_runs"] == 2 and mine["roc_auc_mean"] == pytest.approx(90.5)
    assert mine["paper_roc_auc"] == row["roc_auc"] and mine["paper_params"] == "222k"
    others = table[table["row"] != row["row"]]
    assert (others["n_runs"] == 0).all() and others["roc_auc_mean"].isna().all()
    assert "—" in report.to_markdown(table)


def test_paper_comparison_counts_the_parameters_of_the_model_we_run():
    base = RunConfig.from_flat("paper", dataset="mtt")
    rows = [r for r in paper.TABLE3 if r["row"] == "64 CNN filters - 200 units"]
    table = report.paper_comparison(pd.DataFrame(), rows, base)
    assert table["params"].iloc[0] == 222_878  # the x1/2, 64-filter, 200-unit anchor (docs/paper-details.md)


# ---- formatting -------------------------------------------------------------------------------
def test_markdown_joins_mean_and_sd_and_marks_missing_values():
    table = pd.DataFrame({"model": ["a", "b"], "roc_auc_mean": [90.0, np.nan], "roc_auc_sd": [1.234, np.nan],
                          "rmse_mean": [0.15, 0.2], "rmse_sd": [np.nan, 0.01]})
    text = report.to_markdown(table)
    assert text.splitlines()[0] == "| model | roc_auc | rmse |"
    assert "| a | 90.00 ± 1.23 | 0.1500 |" in text
    assert "| b | — | 0.2000 ± 0.0100 |" in text


def test_preset_differences_name_what_the_default_scaled_down():
    differences = report.preset_differences("default")
    assert {"clip_seconds", "patch_seconds", "max_epochs"} <= set(differences["field"])
    assert "name" not in set(differences["field"])
    pinned = report.preset_differences(RunConfig.from_flat("default", loss="bce"))  # a grid's preset and overrides
    assert pinned.set_index("field").loc["loss", "default"] == "bce"


# ---- qualitative (§5.1) ----------------------------------------------------------------------------
def qualitative_predictions():
    tags = ["east coast", "west coast", "vocals", "rare", "tempo"]
    truth = np.array([[1, 0, 1, 0, 0.2], [0, 1, 1, 0, 0.4], [1, 0, 1, 1, 0.6], [0, 1, 0, 0, 0.8]] * 3, dtype=float)
    joint = truth.copy()  # a joint model: confident and exclusive
    independent = truth.copy()
    independent[:, :2] = 0.9  # an independent model: both coasts high on every clip
    base = {"track_ids": [f"t{i}" for i in range(len(truth))], "tags": tags, "y_true": truth,
            "is_regression": np.array([False, False, False, False, True])}
    return {"net": {**base, "y_score": joint}, "gbt": {**base, "y_score": independent}}


def test_exclusive_pairs_are_found_and_scored_per_model():
    predictions = qualitative_predictions()
    pairs = qualitative.exclusive_pairs(predictions, min_positives=3)
    assert pairs[["tag_a", "tag_b"]].values.tolist()[0] == ["east coast", "west coast"]
    assert "tempo" not in set(pairs["tag_a"]) | set(pairs["tag_b"])  # regression tags are not paired
    scores = qualitative.exclusive_pair_scores(predictions, pairs.head(1))
    assert scores["gbt both_high"].iloc[0] == 1.0 and scores["net both_high"].iloc[0] == 0.0


def test_popularity_bias_counts_top_k_slots():
    predictions = qualitative_predictions()
    bias = qualitative.popularity_bias(predictions, top_k=2)
    assert bias["tag"].iloc[0] == "vocals"  # the most common tag first
    assert bias["net top_k"].sum() == pytest.approx(2.0)  # k slots per clip
    share = qualitative.popular_share(bias, popular=1).set_index("ranking")["share_of_top_k_slots"]
    assert set(share.index) == {"truth", "net", "gbt"}


def test_example_predictions_list_truth_and_each_models_top_tags():
    examples = qualitative.example_predictions(qualitative_predictions(), n_examples=2, top_k=3)
    assert len(examples) == 2
    assert examples["ground truth"].iloc[0] == "east coast, vocals"
    assert examples["net"].iloc[0].startswith("east coast 1.00, vocals 1.00")
    assert "west coast 0.90" in examples["gbt"].iloc[0]


def test_aligned_predictions_keep_shared_clips_in_one_order():
    first = qualitative_predictions()["net"]
    second = {**first, "track_ids": first["track_ids"][::-1], "y_score": first["y_score"][::-1]}
    a, b = qualitative.aligned_predictions(first, second)
    assert a["track_ids"] == b["track_ids"]
    np.testing.assert_array_equal(a["y_score"], b["y_score"])


def test_choose_run_takes_the_largest_size_and_names_what_exists():
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "model": ["waveform", "waveform", "gbt"],
                         "train_size": [10, 100, 100], "seed": [0, 0, 0]})
    assert report.choose_run(runs, model="waveform")["run_id"] == "b"
    with pytest.raises(LookupError, match="spectrogram"):
        report.choose_run(runs, model="spectrogram")


def test_qualitative_views_are_empty_not_broken_before_any_run(tmp_path):
    predictions = qualitative.qualitative_predictions(pd.DataFrame(columns=["run_id", "model", "train_size", "seed"]),
                                                 model="waveform", results_dir=tmp_path)
    assert predictions == {}
    assert qualitative.example_predictions(predictions).empty
    assert qualitative.exclusive_pair_scores(predictions, qualitative.exclusive_pairs(predictions)).empty
    bias = qualitative.popularity_bias(predictions)
    assert bias.empty and qualitative.popular_share(bias).empty
    assert qualitative.plot_popularity_bias(bias).axes[0].texts


def test_figure3_without_runs_still_draws_the_papers_panels():
    empty = pd.DataFrame(columns=["model", "train_size", *report.METRICS])
    figure = report.plot_data_scale(empty, paper.TABLE1)
    assert len(figure.axes) == 6 and figure.legends  # the legend comes from the paper's panels


def test_generated_sentences_are_written_under_their_caption(tmp_path):
    path = report.write_text("- waveform ahead.\n\n", "facts", tmp_path / "tables", caption="What the runs show")
    assert path.read_text() == "What the runs show\n\n- waveform ahead.\n"
