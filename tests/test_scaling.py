"""The data-scale statistics (study/scaling.py) on synthetic runs whose predictions have known quality."""
from __future__ import annotations

import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from study import results, scaling  # noqa: E402
from study.config import RunConfig  # noqa: E402

CLIPS, TAGS = 200, ["a", "b", "c", "d", "e", "loud"]
IS_REGRESSION = [False, False, False, False, False, True]
# designed signal strength per (model, size): the waveform gains more per decade and overtakes the spectrogram
STRENGTH = {("waveform", 100): 0.6, ("waveform", 1000): 1.4, ("waveform", 10000): 2.6,
            ("spectrogram", 100): 1.0, ("spectrogram", 1000): 1.4, ("spectrogram", 10000): 1.8}


def labels() -> np.ndarray:
    rng = np.random.default_rng(123)  # one test set shared by every run
    y = (rng.random((CLIPS, len(TAGS))) < 0.3).astype(np.float32)
    y[:, -1] = rng.random(CLIPS)  # the regression tag
    return y


def store(results_dir, model: str, size: int, seed: int, *, epochs: int = 6, best: int = 3, cap: int = 50,
          stop: str = "early stopping", clips: int = CLIPS, whole_clip: bool = False,
          strength: float | None = None) -> str:
    cfg = RunConfig.from_flat("smoke", model=model, train_size=size, seed=seed, max_epochs=cap, patience=3,
                              whole_clip=whole_clip)
    y = labels()[:clips]
    rng = np.random.default_rng([seed, size, len(model)])
    strength = STRENGTH.get((model, size), 1.0) if strength is None else strength
    score = 1 / (1 + np.exp(-(strength * (2 * y - 1) + rng.normal(0, 1, y.shape))))  # better separation = higher AUC
    score[:, -1] = np.clip(y[:, -1] + rng.normal(0, 0.5 / strength, clips), 0, 1)
    curve = pd.DataFrame({"epoch": range(1, epochs + 1), "valid_loss": np.abs(np.arange(epochs) - (best - 1)) + 0.1,
                          "valid_roc_auc": 0.5 + 0.01 * np.arange(epochs)})
    results.write_run(results_dir, cfg.run_id, config=cfg.to_dict(), metrics={"overall": {}, "n_test": clips},
                      per_tag=pd.DataFrame({"tag": TAGS}), curve=curve,
                      protocol={"training": {"epochs": epochs, "best_epoch": best, "stop_reason": stop}},
                      provenance={}, predictions={"track_ids": [f"t{i}" for i in range(clips)], "y_true": y,
                                                  "y_score": score, "tags": TAGS, "is_regression": IS_REGRESSION})
    return cfg.run_id


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale")
    for model in ("waveform", "spectrogram"):
        for size in (100, 1000, 10000):
            for seed in (0, 1):
                store(folder, model, size, seed)
    store(folder, "gbt", 1000, 0)
    runs = results.load_runs(folder)
    draws = scaling.cell_draws(runs, scaling.resample_runs(runs, folder, samples=400, seed=0))
    return folder, runs, draws


def test_cells_have_intervals_around_their_means_and_rerun_identically(study):
    folder, runs, draws = study
    table = scaling.cell_table(runs, draws)
    assert len(table) == 7 and set(table["n_runs"]) == {1, 2}
    for metric in ("roc_auc", "pr_auc", "rmse"):
        assert (table[f"{metric}_lo"] <= table[metric]).all() and (table[metric] <= table[f"{metric}_hi"]).all()
    assert (table["roc_auc_lo"] > 50).all()  # every designed model beats chance clearly
    again = scaling.cell_draws(runs, scaling.resample_runs(runs, folder, samples=400, seed=0))
    pd.testing.assert_frame_equal(scaling.cell_table(runs, again), table)


def test_paired_differences_follow_the_designed_ranking(study):
    _, _, draws = study
    diffs = scaling.paired_differences(draws).set_index(["train_size", "a", "b", "metric"])
    small = diffs.loc[(100, "waveform", "spectrogram", "roc_auc")]
    large = diffs.loc[(10000, "waveform", "spectrogram", "roc_auc")]
    assert small["difference"] < 0 and small["difference_hi"] < 0 and small["p"] < 0.05  # spectrogram ahead with little data
    assert large["difference"] > 0 and large["difference_lo"] > 0 and large["p"] < 0.05  # waveform ahead with much
    assert (1000, "waveform", "gbt", "roc_auc") in diffs.index and (100, "waveform", "gbt", "roc_auc") not in diffs.index


def test_slopes_and_a_crossover_inside_the_trained_range(study):
    _, _, draws = study
    slopes, crossings = scaling.scaling_fits(draws)
    roc = slopes[slopes["metric"] == "roc_auc"].set_index("model")
    assert roc.loc["waveform", "slope"] > roc.loc["spectrogram", "slope"] > 0
    assert roc.loc["waveform", "slope_lo"] > roc.loc["spectrogram", "slope_hi"] or \
        roc.loc["waveform", "slope_lo"] > 0
    crossing = crossings.set_index("metric").loc["roc_auc"]
    assert crossing["where"] == "inside the trained range" and crossing["better_with_more_data"] == "waveform"
    assert 100 < crossing["crossover"] < 10000
    assert crossing["crossover_lo"] <= crossing["crossover"] <= crossing["crossover_hi"]


def test_parallel_lines_place_no_crossover(tmp_path):
    for model in ("waveform", "spectrogram"):
        for size in (100, 1000):
            STRENGTH[(model, size)] = 1.0 if size == 100 else 1.3  # same gain for both
            store(tmp_path, model, size, 0)
    runs = results.load_runs(tmp_path)
    draws = scaling.cell_draws(runs, scaling.resample_runs(runs, tmp_path, samples=300))
    _, crossings = scaling.scaling_fits(draws)
    assert crossings.set_index("metric").loc["roc_auc", "where"].startswith("not placed")
    STRENGTH.update({("waveform", 100): 0.6, ("waveform", 1000): 1.4, ("spectrogram", 100): 1.0,
                     ("spectrogram", 1000): 1.4})


def test_runs_on_different_test_sets_are_refused_by_name(tmp_path):
    store(tmp_path, "waveform", 100, 0)
    other = store(tmp_path, "spectrogram", 100, 0, clips=150)
    with pytest.raises(ValueError, match=other):
        scaling.resample_runs(results.load_runs(tmp_path), tmp_path, samples=10)


def test_stop_reasons_flag_a_run_capped_while_still_improving(tmp_path):
    store(tmp_path, "waveform", 100, 0, epochs=10, best=10, cap=10, stop="epoch cap")  # best at the cap
    store(tmp_path, "waveform", 100, 1, epochs=10, best=4, cap=10, stop="epoch cap")  # capped, but plateaued
    store(tmp_path, "spectrogram", 100, 0, epochs=7, best=4, cap=50)
    runs = results.load_runs(tmp_path)
    records = scaling.training_records(runs, tmp_path)
    assert scaling.capped_runs(records) == [records.loc[records["seed"].eq(0) & records["model"].eq("waveform"),
                                                        "run_id"].item()]
    table = scaling.stop_table(records).set_index("model")
    assert table.loc["waveform", "epoch_cap"] == 2 and table.loc["waveform", "capped_while_improving"] == 1
    assert table.loc["spectrogram", "early_stopping"] == 1
    curves = scaling.learning_curves(runs, tmp_path)
    assert set(curves["model"]) == {"waveform", "spectrogram"} and len(curves) == 27
    figure = scaling.plot_learning_curves(curves)
    assert len(figure.axes) >= 2


def test_an_empty_store_gives_empty_tables_and_a_plain_statement(tmp_path):
    runs = results.load_runs(tmp_path)
    draws = scaling.cell_draws(runs, scaling.resample_runs(runs, tmp_path, samples=10))
    cells, pairs = scaling.cell_table(runs, draws), scaling.paired_differences(draws)
    slopes, crossings = scaling.scaling_fits(draws)
    records = scaling.training_records(runs, tmp_path)
    assert cells.empty and pairs.empty and slopes.empty and crossings.empty and records.empty
    assert scaling.facts(cells, pairs, slopes, crossings, records) == ""
    assert len(scaling.plot_learning_curves(scaling.learning_curves(runs, tmp_path)).axes) == 1


def test_contrasts_compare_every_pair_of_one_field_within_the_others(study):
    folder, runs, _ = study
    networks = runs[runs["model"] != "gbt"]
    draws = scaling.cell_draws(networks, scaling.resample_runs(networks, folder, samples=100), by=("model", "train_size"))
    table = scaling.contrasts(draws, by=("model", "train_size"), vary="train_size")
    waveform = table[(table["model"] == "waveform") & (table["metric"] == "roc_auc")].set_index(["a", "b"])
    assert len(waveform) == 3  # 100-1000, 100-10000, 1000-10000
    assert waveform.loc[(100, 10000), "difference"] < 0 and waveform.loc[(100, 10000), "difference_hi"] < 0
    cells = scaling.cell_table(networks, draws, by=("model", "train_size"))
    assert list(cells.columns[:3]) == ["model", "train_size", "n_runs"]


def test_a_budget_keeps_the_best_epoch_finished_inside_each_runs_share():
    # two runs of 10 epochs, 60 s each: validation loss falls until epoch 6 (run a) or 7 (run b)
    rows = []
    for run_id, best in (("a", 6), ("b", 7)):
        for epoch in range(1, 11):
            loss = 1.0 - 0.1 * min(epoch, best) + 0.01 * max(epoch - best, 0)
            rows.append({"run_id": run_id, "model": "spectrogram", "train_size": 100, "seed": 0, "epoch": epoch,
                         "valid_loss": loss, "valid_roc_auc": 0.5 + 0.04 * min(epoch, best),
                         "valid_pr_auc": 0.1 * min(epoch, best) / 10, "seconds": 60.0})
    table = scaling.budget_tradeoff(pd.DataFrame(rows), budgets=(4, 20), jobs=2, patience=3)
    # 4 min x 2 jobs / 2 runs = 4 epochs each: both still improving, ROC-AUC of epoch 4
    short = table[table["budget_minutes"] == 4].iloc[0]
    assert (short["epochs_median"], short["still_improving"]) == (4, 2)
    assert short["valid_roc_auc"] == pytest.approx(100 * (0.5 + 0.04 * 4))
    # 20 min is more than the runs used: the same as the runs as they ran, whose minutes are 20 x 60 s / 2 jobs
    roomy = table[table["budget_minutes"] == 20].iloc[0]
    as_run = table[table["as_run"]].iloc[0]
    assert roomy["still_improving"] == 0 and not roomy["as_run"]
    assert as_run["budget_minutes"] == pytest.approx(10.0)
    assert roomy["valid_roc_auc"] == pytest.approx(as_run["valid_roc_auc"]) == pytest.approx(100 * (0.5 + 0.04 * 6.5))
    # the same two runs stored of a grid of 4: the budget is shared 4 ways, 2 epochs each
    shared = scaling.budget_tradeoff(pd.DataFrame(rows), budgets=(4,), jobs=2, patience=3, study_runs=4)
    assert shared[~shared["as_run"]].iloc[0]["epochs_median"] == 2


def test_learning_curves_can_be_faceted_by_model_and_coloured_by_loss():
    rows = [{"run_id": f"{model}-{loss}", "model": model, "loss": loss, "seed": 0, "epoch": epoch,
             "valid_loss": 1 / epoch, "valid_roc_auc": 1 - 1 / (epoch + 1)}
            for model in ("spectrogram", "waveform") for loss in ("bce", "mse") for epoch in range(1, 5)]
    figure = scaling.plot_learning_curves(pd.DataFrame(rows), metrics=("valid_roc_auc",), col="model", hue="loss")
    titles = sorted(ax.get_title() for ax in figure.axes if ax.get_title())
    assert titles == ["spectrogram", "waveform"]
    assert all(len(ax.collections) == 2 for ax in figure.axes)  # the kept epoch of each loss, one dot colour each


def test_the_reading_says_plainly_whether_the_runs_agree_with_the_paper():
    crossings = pd.DataFrame([
        {"metric": "roc_auc", "where": "inside the trained range", "better_with_more_data": "spectrogram"},
        {"metric": "pr_auc", "where": "not placed: the slopes cannot be told apart", "better_with_more_data": "waveform"},
    ])
    paper = pd.DataFrame([
        {"source": "paper (Table 1)", "metric": metric, "model": model, "slope_per_decade": slope}
        for metric in ("roc_auc", "pr_auc") for model, slope in (("waveform", 2.0), ("spectrogram", 1.0))])
    sentences = scaling._paper_agreement(crossings, paper)
    assert len(sentences) == 2
    assert "waveform ROC-AUC line is the steeper" in sentences[0] and "disagree with the paper" in sentences[0]
    assert "neither confirm nor contradict" in sentences[1]
    crossings.loc[0, "better_with_more_data"] = "waveform"
    assert "as in the paper" in scaling._paper_agreement(crossings, paper)[0]


def test_the_loss_reading_orients_every_difference_against_the_default_and_gives_a_verdict():
    pairs = pd.DataFrame([
        # bce - per_kind: per_kind is 0.5 points worse in ROC-AUC, surely
        {"model": "waveform", "a": "bce", "b": "per_kind", "metric": "roc_auc", "difference": 0.5,
         "difference_lo": 0.2, "difference_hi": 0.8, "p": 0.001},
        # mse - bce √MSE: lower is better, so mse is better, but the interval crosses zero
        {"model": "waveform", "a": "mse", "b": "bce", "metric": "rmse", "difference": -0.002,
         "difference_lo": -0.004, "difference_hi": 0.001, "p": 0.2},
        {"model": "waveform", "a": "mse", "b": "per_kind", "metric": "roc_auc", "difference": 9.0,
         "difference_lo": 8.0, "difference_hi": 10.0, "p": 0.0},  # the default is not in this pair
    ])
    reading = scaling.loss_reading(pairs, "bce").splitlines()
    assert len(reading) == 3
    assert "per_kind − bce = -0.50" in reading[0] and "[-0.80, -0.20]" in reading[0] and reading[0].endswith("worse.")
    assert "mse − bce = -0.0020" in reading[1] and "not told apart" in reading[1]
    assert reading[2] == ("- **No other loss beats `bce`** with an interval that excludes zero; `bce` is better than "
                          "per_kind for the waveform on ROC-AUC.")
    pairs.loc[0, ["difference", "difference_lo", "difference_hi"]] = [-0.5, -0.8, -0.2]
    assert "By the rule, per_kind replaces `bce`" in scaling.loss_reading(pairs, "bce")
    spectrogram = pairs.iloc[[0]].assign(model="spectrogram", difference=0.5, difference_lo=0.2, difference_hi=0.8)
    assert "The runs disagree" in scaling.loss_reading(pd.concat([pairs, spectrogram]), "bce")
    assert scaling.loss_reading(pairs.iloc[0:0], "bce") == ""


AHEAD = re.compile(r"(\w+) ahead by (-?[\d.]+) points \(95 % interval \[(-?[\d.]+), (-?[\d.]+)\], (excludes|includes) 0")


def _stated(sentences: str) -> list[tuple[str, float, float, float, str]]:
    return [(who, float(lead), float(low), float(high), sure) for who, lead, low, high, sure in AHEAD.findall(sentences)]


def test_each_front_end_ahead_is_stated_with_the_interval_of_its_own_lead():
    # the table holds waveform - spectrogram: spectrogram ahead at 100 clips, waveform at 1,000
    pairs = pd.DataFrame([
        {"train_size": 100, "a": "waveform", "b": "spectrogram", "metric": "roc_auc", "difference": -0.33,
         "difference_lo": -0.52, "difference_hi": -0.16, "p": 0.001},
        {"train_size": 1000, "a": "waveform", "b": "spectrogram", "metric": "roc_auc", "difference": 0.41,
         "difference_lo": 0.12, "difference_hi": 0.70, "p": 0.004},
        {"train_size": 1000, "a": "waveform", "b": "spectrogram", "metric": "pr_auc", "difference": -0.20,
         "difference_lo": -1.40, "difference_hi": 0.67, "p": 0.443},
    ])
    empty = pd.DataFrame(columns=["metric", "model"])
    text = scaling.facts(empty, pairs, empty, pd.DataFrame(), pd.DataFrame())
    assert "ROC-AUC spectrogram ahead by 0.33 points (95 % interval [0.16, 0.52], excludes 0" in text
    assert "ROC-AUC waveform ahead by 0.41 points (95 % interval [0.12, 0.70], excludes 0" in text
    assert "PR-AUC spectrogram ahead by 0.20 points (95 % interval [-0.67, 1.40], includes 0" in text
    assert len(_stated(text)) == 3


def test_the_facts_of_stored_runs_state_every_lead_inside_its_interval(study):
    folder, runs, draws = study
    cells, pairs = scaling.cell_table(runs, draws), scaling.paired_differences(draws)
    slopes, crossings = scaling.scaling_fits(draws)
    stated = _stated(scaling.facts(cells, pairs, slopes, crossings, scaling.training_records(runs, folder)))
    assert {who for who, *_ in stated} == {"spectrogram", "waveform"}  # the designed runs put each ahead somewhere
    for who, lead, low, high, sure in stated:
        assert lead >= 0 and low <= lead <= high, (who, lead, low, high)
        assert (sure == "excludes") == (low > 0), (who, lead, low, high)  # a sure lead has a positive interval
    roc = crossings.set_index("metric").loc["roc_auc"]
    line = next(line for line in scaling.facts(cells, pairs, slopes, crossings, pd.DataFrame()).splitlines()
                if line.startswith("- ROC-AUC lines"))
    assert f"the steeper rise is waveform's, by {roc['slope_difference']:.2f} points per decade" in line


def test_the_steeper_line_is_stated_with_the_interval_of_its_own_gap():
    crossings = pd.DataFrame([  # slope_difference is a - b
        {"metric": "roc_auc", "a": "waveform", "b": "spectrogram", "slope_difference": -0.8,
         "slope_difference_lo": -1.3, "slope_difference_hi": -0.3, "crossover": np.nan, "crossover_lo": np.nan,
         "crossover_hi": np.nan, "where": "beyond the trained range", "better_with_more_data": "spectrogram"},
        # √MSE: the waveform's error falls faster (its slope is lower), so it is the better with more data
        {"metric": "rmse", "a": "waveform", "b": "spectrogram", "slope_difference": -0.004,
         "slope_difference_lo": -0.007, "slope_difference_hi": -0.001, "crossover": np.nan, "crossover_lo": np.nan,
         "crossover_hi": np.nan, "where": "beyond the trained range", "better_with_more_data": "waveform"},
    ])
    empty = pd.DataFrame(columns=["metric", "model", "a", "b", "train_size"])
    lines = scaling.facts(empty, empty, empty, crossings, pd.DataFrame()).splitlines()
    assert lines[0].endswith("the steeper rise is spectrogram's, by 0.80 points per decade (95 % interval [0.30, 1.30]).")
    assert lines[1].startswith("- √MSE lines")
    assert lines[1].endswith("the steeper fall is waveform's, by 0.0040 per decade (95 % interval [0.0010, 0.0070]).")


def _loss_pairs(rows) -> pd.DataFrame:
    """Paired rows (model, a, b, metric, a - b, its interval), p fixed: what :func:`scaling.contrasts` stores."""
    return pd.DataFrame([{"model": model, "a": a, "b": b, "metric": metric, "difference": diff, "difference_lo": low,
                          "difference_hi": high, "p": 0.001} for model, a, b, metric, diff, low, high in rows])


def test_the_loss_verdict_groups_its_findings_by_loss_and_front_end():
    pairs = _loss_pairs([
        ("spectrogram", "bce", "per_kind", "roc_auc", -0.21, -0.32, -0.10),  # per_kind better
        ("spectrogram", "bce", "per_kind", "pr_auc", -1.35, -1.93, -0.77),  # per_kind better
        ("spectrogram", "bce", "per_kind", "rmse", 0.0004, -0.0008, 0.0015),  # not told apart: not in the verdict
        ("waveform", "bce", "per_kind", "roc_auc", 0.24, 0.13, 0.34),  # per_kind worse
        ("waveform", "bce", "per_kind", "pr_auc", 1.21, 0.51, 2.00),  # per_kind worse
        ("waveform", "bce", "per_kind", "rmse", -0.0046, -0.0061, -0.0031),  # per_kind's √MSE higher: worse
        ("waveform", "mse", "bce", "roc_auc", -2.0, -3.0, -1.0),  # mse worse, and nowhere better
    ])
    reading = scaling.loss_reading(pairs, "bce").splitlines()
    assert reading[0].startswith("- spectrogram, ROC-AUC: per_kind − bce = +0.21 (95 % interval [0.10, 0.32]")
    assert reading[5].startswith("- waveform, √MSE: per_kind − bce = +0.0046 (95 % interval [0.0031, 0.0061]")
    assert reading[-1].startswith(
        "- **The runs disagree**: per_kind is better than `bce` for the spectrogram on ROC-AUC and PR-AUC, but worse "
        "for the waveform on ROC-AUC, PR-AUC and √MSE; mse is worse than `bce` for the waveform on ROC-AUC. ")
    winning = scaling.loss_reading(pairs[pairs["model"].eq("spectrogram")], "bce").splitlines()[-1]
    assert winning == ("- **By the rule, per_kind replaces `bce`**: it is better than `bce` for the spectrogram on "
                       "ROC-AUC and PR-AUC, with an interval that excludes zero, and worse nowhere.")
    both = pd.concat([pairs[pairs["model"].eq("spectrogram")], pairs[pairs["model"].eq("spectrogram")].replace("per_kind", "mse")])
    assert scaling.loss_reading(both, "bce").splitlines()[-1].startswith(
        "- **Several losses beat `bce`** with an interval that excludes zero, and lose nowhere: per_kind is better")
    assert scaling.loss_choice(pairs[pairs["model"].eq("spectrogram")], "bce") == "per_kind"
    assert scaling.loss_choice(pairs, "bce") == "bce"  # better on one front-end, worse on the other
    assert scaling.loss_choice(both, "bce") == "bce"  # two candidates: the rule names none
    losing = pairs[pairs["model"].eq("waveform")].assign(model=["spectrogram", "waveform", "waveform", "waveform"])
    assert scaling.loss_reading(losing, "bce").splitlines()[-1] == (
        "- **No other loss beats `bce`** with an interval that excludes zero; `bce` is better than per_kind for the "
        "spectrogram on ROC-AUC, and for the waveform on PR-AUC and √MSE, and than mse for the waveform on ROC-AUC.")


def test_the_whole_clip_is_compared_with_the_patches_of_the_same_checkpoints_seed_by_seed(tmp_path):
    configs = [RunConfig.from_flat("smoke", model=model, train_size=100, seed=seed, max_epochs=50, patience=3)
               for model in ("waveform", "spectrogram") for seed in (0, 1, 2)]
    for cfg in configs:
        store(tmp_path, cfg.model.model, 100, cfg.train.seed, strength=1.0)
        better = {"waveform": 2.0, "spectrogram": 0.5}[cfg.model.model]  # designed: whole clips help one, hurt the other
        if cfg.train.seed < 2:  # seed 2's checkpoints were never scored whole: left out of the pairs
            store(tmp_path, cfg.model.model, 100, cfg.train.seed, whole_clip=True, strength=better)
    runs = results.load_runs(tmp_path)
    pairs = scaling.whole_clip_pairs(runs, configs)
    assert sorted(zip(pairs["model"], pairs["seed"])) == [("spectrogram", 0), ("spectrogram", 1), ("waveform", 0),
                                                          ("waveform", 1)]
    assert all(runs.set_index("run_id").loc[pairs["run_id_whole"], "whole_clip"])
    resampled = scaling.resample_runs(runs, tmp_path, samples=300, seed=0)
    table = scaling.whole_clip_comparison(pairs, resampled)
    auc = table[table["metric"] == "roc_auc"].set_index("model")
    assert auc.loc["waveform", "difference"] > 0 and auc.loc["waveform", "difference_lo"] > 0
    assert auc.loc["spectrogram", "difference"] < 0 and auc.loc["spectrogram", "difference_hi"] < 0
    assert (auc["n_seeds"] == 2).all()
    for _, row in auc.iterrows():  # the difference is the two protocols' means subtracted, inside its interval
        assert row["difference"] == pytest.approx(row["whole_clip"] - row["patches"])
        assert row["difference_lo"] <= row["difference"] <= row["difference_hi"]
    again = scaling.whole_clip_comparison(pairs, resampled)
    pd.testing.assert_frame_equal(table, again)  # one seeded stream: reruns are identical
    reading = scaling.whole_clip_reading(table, metrics=["roc_auc"]).splitlines()
    assert reading[0] == "On ROC-AUC:"
    assert reading[1].startswith("- spectrogram at 100 clips (2 seed(s)): the mean over patches is ahead by ")
    assert reading[2].startswith("- waveform at 100 clips (2 seed(s)): the whole clip is ahead by ")
    for sentence in reading[1:]:  # each lead is positive and inside its own interval
        lead, low, high = map(float, re.findall(r"by (-?[\d.]+) points \(95 % interval \[(-?[\d.]+), (-?[\d.]+)\]",
                                                sentence)[0])
        assert 0 < low <= lead <= high
