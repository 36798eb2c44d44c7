"""Batch reruns: grid files, skipping complete runs, retries, parallel runs, reports, and the smoke study."""
from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from study import batch, paper, results
from study.config import RunConfig, config_from_namespace, field_comments
from study.data import load_collection

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "notebooks" / "01_experiment.ipynb"


def write_grid(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def write_notebook(path: Path, parameters: str, *body: str) -> Path:
    cells = [new_code_cell(textwrap.dedent(parameters).strip()), *(new_code_cell(textwrap.dedent(b).strip()) for b in body)]
    cells[0].metadata["tags"] = ["parameters"]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def store_fake_run(results_dir: Path, cfg: RunConfig) -> None:
    """A complete run folder of ``cfg`` on the data it names (the manifest hash a real run records)."""
    data = {"manifest_hash": load_collection(cfg.data).manifest_hash()}
    results.write_run(results_dir, cfg.run_id, config=cfg.to_dict(), metrics={"overall": {"roc_auc": 0.5}, "n_test": 1},
                      per_tag=pd.DataFrame({"tag": ["a"]}), curve=None, protocol={}, provenance={"data": data},
                      predictions={"track_ids": ["t"], "y_true": [[1.0]], "y_score": [[0.5]], "tags": ["a"],
                                   "is_regression": [False]})


# ---- grid files -------------------------------------------------------------------------------
def test_expand_is_the_cartesian_product_and_scalars_count_as_one_value():
    points = batch.expand({"model": ["waveform", "spectrogram"], "seed": [0, 1, 2], "train_size": 100})
    assert len(points) == 6
    assert {"model": "spectrogram", "seed": 2, "train_size": 100} in points


def test_load_grid_merges_overrides_and_drops_duplicate_runs(tmp_path):
    grid = batch.load_grid(write_grid(tmp_path / "g.yaml", f"""
        notebook: {EXPERIMENT}
        preset: smoke
        overrides: {{max_epochs: 1}}
        grid:
          - {{model: [waveform, spectrogram], frontend_multiplier: [0.5, 1.0]}}
          - {{model: [waveform], frontend_multiplier: [1.0], backend_filters: [32, 64]}}
        reports: [{EXPERIMENT}]
        """))
    # the second entry's 32-filter point is the preset's back-end: the same run as a first-entry point
    assert len(grid.points) == 5
    assert all(point["max_epochs"] == 1 for point in grid.points)
    assert len({cfg.run_id for cfg in grid.configs()}) == 5
    assert grid.base_config().train.max_epochs == 1 and grid.reports[0].notebook == EXPERIMENT


@pytest.mark.parametrize("entry, message", [
    ("{colour: [red]}", "colour"),  # not a parameter of the notebook
    ("{results_dir: [x], model: [waveform]}", None),  # a notebook parameter but no config field: caught by the config
    ("{seed: [zero]}", "seed"),  # wrong type
])
def test_load_grid_names_the_file_and_the_bad_setting(tmp_path, entry, message):
    path = write_grid(tmp_path / "bad.yaml", f"notebook: {EXPERIMENT}\npreset: smoke\ngrid:\n  - {entry}\n")
    with pytest.raises(ValueError, match="bad.yaml") as error:
        batch.load_grid(path)
    assert message is None or message in str(error.value)


def test_environment_variables_fill_machine_paths_and_missing_ones_are_named(tmp_path, monkeypatch):
    path = write_grid(tmp_path / "mtt.yaml", f"""
        notebook: {EXPERIMENT}
        preset: smoke
        overrides: {{data_root: $STUDY_TEST_ROOT}}
        grid: [{{seed: [0]}}]
        """)
    monkeypatch.delenv("STUDY_TEST_ROOT", raising=False)
    with pytest.raises(ValueError, match="STUDY_TEST_ROOT"):
        batch.load_grid(path)
    assert batch.load_grid(path, require_env=False).points[0]["data_root"] == ""
    monkeypatch.setenv("STUDY_TEST_ROOT", "/data/mtt")
    assert batch.load_grid(path).points[0]["data_root"] == "/data/mtt"


def test_config_from_parameters_keeps_the_preset_where_a_parameter_is_none():
    cfg = batch.config_from_parameters("smoke", model="waveform", train_size=None, seed=3)
    assert cfg.model.model == "waveform" and cfg.train.seed == 3
    assert cfg.data.train_size == RunConfig.from_flat("smoke").data.train_size
    with pytest.raises(ValueError, match="colour"):
        batch.config_from_parameters("smoke", colour="red")


def test_a_notebook_namespace_gives_every_field_by_its_name():
    namespace = {name: None for name in RunConfig.flat_fields()} | {"seed": 4, "whole_clip": True, "In": []}
    cfg = config_from_namespace("smoke", namespace)
    assert cfg == RunConfig.from_flat("smoke", seed=4, whole_clip=True)
    del namespace["loss"]
    with pytest.raises(ValueError, match=r"no parameter for the config fields \['loss'\]"):
        config_from_namespace("smoke", namespace)


def test_every_config_field_is_documented_where_it_is_defined():
    comments = field_comments()
    assert list(comments) == list(RunConfig.flat_fields())
    undocumented = [name for name, comment in comments.items() if not comment]
    assert not undocumented, f"fields without a comment in study/config.py: {undocumented}"
    assert "=" not in "".join(comments.values()), "papermill cannot read a parameter line with a second '='"


# ---- the repository's grids ---------------------------------------------------------------------
def test_default_grid_is_the_issues_data_scale_study():
    grid = batch.load_grid(REPO / "grids" / "default.yaml")
    assert grid.preset == "default"
    cells = pd.DataFrame(grid.points).groupby("model")
    for model in ("waveform", "spectrogram"):
        points = cells.get_group(model)
        sizes = sorted(points["train_size"].unique())
        assert len(sizes) >= 3 and sizes[-1] >= 10 * sizes[0]
        assert (points.groupby("train_size")["seed"].nunique() >= 3).all()
    assert "gbt" in cells.groups
    assert max(p["train_size"] for p in grid.points) <= RunConfig.from_flat("default").data.corpus_size * 0.8


@pytest.mark.parametrize("name, tables", [("mtt", paper.TABLE2 + paper.TABLE3), ("msd", paper.TABLE4)])
def test_dataset_grids_run_every_row_of_the_paper_we_reproduce_three_times(name, tables):
    grid = batch.load_grid(REPO / "grids" / f"{name}.yaml", require_env=False)
    base = grid.base_config()
    have = {cfg.run_id for cfg in grid.configs()}
    for row in tables:
        if row["config"]:
            for seed in (0, 1, 2):
                cfg = base.with_overrides(**row["config"], seed=seed)
                assert cfg.run_id in have, f"{name}.yaml lacks {row['row']} (Table {row['table']}), seed {seed}"


def test_paper_grid_uses_the_papers_patches_and_size_ratios():
    grid = batch.load_grid(REPO / "grids" / "paper.yaml")
    assert grid.base_config().train.patch_seconds == 15.0  # §4
    sizes = sorted({p["train_size"] for p in grid.points if p["model"] != "gbt"})
    assert [size / sizes[0] for size in sizes] == [1, 5, 10]  # 100k : 500k : 1M


def test_every_grid_loads_and_its_reports_exist():
    for path in sorted((REPO / "grids").glob("*.yaml")):
        grid = batch.load_grid(path, require_env=False)
        assert grid.points and all(report.notebook.is_file() for report in grid.reports), path.name


# ---- running notebooks --------------------------------------------------------------------------
def test_execute_notebook_retries_a_failure_and_reports_the_last_error(tmp_path):
    flaky = write_notebook(tmp_path / "flaky.ipynb", 'marker = "unset"  # file',
                           """
                           from pathlib import Path
                           if not Path(marker).exists():
                               Path(marker).write_text("failed once")
                               raise RuntimeError("first attempt fails")
                           """)
    result = batch.execute_notebook(flaky, tmp_path / "out.ipynb", {"marker": str(tmp_path / "m")}, retries=1)
    assert result.error is None and result.attempts == 2
    assert "marker" in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[1].source  # papermill injected it

    broken = write_notebook(tmp_path / "broken.ipynb", "size = 1  # count", 'raise ValueError(f"boom {size}")')
    result = batch.execute_notebook(broken, tmp_path / "broken-out.ipynb", {"size": 7}, retries=0)
    assert result.attempts == 1 and result.error == "ValueError: boom 7"


def test_each_parallel_job_gets_its_own_gpu():
    assert batch.job_gpus(2, None, 2) == ["0", "1"]
    assert batch.job_gpus(3, "4,6", 2) == ["4", "6", "4"]  # more jobs than GPUs: shared in turn
    assert batch.job_gpus(2, None, 0) == [None, None]  # no GPU: nothing set
    assert batch.job_gpus(2, "", 0) == [None, None]


def test_each_point_process_gets_its_share_of_the_cpus_and_its_own_gpu(monkeypatch):
    from study.scheduler import LocalExecutor

    for name in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    executor = LocalExecutor(threads=1, gpus=[None, "3"])
    first, second = executor.environment(0), executor.environment(1)
    assert "CUDA_VISIBLE_DEVICES" not in first and first["OMP_NUM_THREADS"] == first["MKL_NUM_THREADS"] == "1"
    assert second["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a user's own setting wins
    assert LocalExecutor(threads=1).environment(0)["OMP_NUM_THREADS"] == "2"


def test_batch_skips_complete_runs_runs_the_rest_in_parallel_then_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "prepare_data", lambda configs, **kwargs: None)  # the fake runs need no audio
    monkeypatch.setattr(batch, "_visible_gpus", lambda jobs: batch.job_gpus(jobs, "5,7", 2))  # names only
    experiment = write_notebook(
        tmp_path / "fake_experiment.ipynb",
        'preset = "smoke"  # preset\nresults_dir = "results"  # folder\nmodel = None  # name\nseed = None  # int',
        """
        import os
        import pandas as pd
        from study import results
        from study.batch import config_from_parameters
        from study.data import load_collection
        cfg = config_from_parameters(preset, model=model, seed=seed)
        data = {"manifest_hash": load_collection(cfg.data).manifest_hash()}
        results.write_run(results_dir, cfg.run_id, config=cfg.to_dict(), metrics={"overall": {"roc_auc": 0.5}, "n_test": 1},
                          per_tag=pd.DataFrame({"tag": ["a"]}), curve=None, protocol={},
                          provenance={"data": data, "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")},
                          predictions={"track_ids": ["t"], "y_true": [[1.0]], "y_score": [[0.5]], "tags": ["a"],
                                       "is_regression": [False]})
        """)
    summary_report = write_notebook(
        tmp_path / "fake_report.ipynb",
        'grid = "g.yaml"  # grid\nresults_dir = "results"  # folder\ntables_dir = "results/tables"  # folder',
        """
        from pathlib import Path
        from study.batch import load_grid
        from study.report import grid_runs, write_table
        from study.results import load_runs
        runs = grid_runs(load_runs(results_dir), load_grid(grid))
        write_table(runs[["run_id", "model"]], "fake_summary", tables_dir)
        """)
    grid_path = write_grid(tmp_path / "g.yaml", f"""
        notebook: {experiment}
        preset: smoke
        outputs: fake
        grid: [{{model: [waveform, spectrogram, gbt], seed: [0]}}]
        reports: [{summary_report}]
        """)
    grid = batch.load_grid(grid_path)
    done_before = grid.configs()[0]
    store_fake_run(tmp_path / "results", done_before)

    summary = batch.run_batch(grid, results_dir=tmp_path / "results", figures_dir=tmp_path / "figures", jobs=2, retries=0)
    assert summary.ok, summary.failed
    assert summary.skipped == [done_before.run_id]
    assert sorted(summary.done) == sorted(cfg.run_id for cfg in grid.configs()[1:])
    assert all((tmp_path / "results" / "notebooks" / f"{run_id}.ipynb").is_file() for run_id in summary.done)
    gpus = [results.read_json(results.run_path(tmp_path / "results", run_id), "provenance.json")["gpu"]
            for run_id in summary.done]
    assert set(gpus) <= {"5", "7"} and None not in gpus  # each parallel kernel ran with one GPU of its own
    written = pd.read_csv(tmp_path / "results" / "tables" / "fake" / "fake_summary.csv")  # the grid's outputs folder
    assert sorted(written["model"]) == ["gbt", "spectrogram", "waveform"]
    assert summary.reports == [tmp_path / "results" / "notebooks" / "fake_report-g.ipynb"]

    again = batch.run_batch(grid, results_dir=tmp_path / "results", jobs=2, report=False)
    assert again.done == [] and len(again.skipped) == 3


def test_cli_registers_batch_report_and_run():
    from study.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["batch", "grids/smoke.yaml", "--jobs", "2", "--retries", "3", "--no-report"])
    assert (args.grid, args.jobs, args.retries, args.no_report) == ("grids/smoke.yaml", 2, 3, True)
    assert parser.parse_args(["run"]).preset == "default"
    assert parser.parse_args(["report"]).grid is None
    with pytest.raises(FileNotFoundError, match="nonesuch"):
        batch.grid_for_preset("nonesuch")


# ---- the smoke study end to end ------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_study_runs_end_to_end_through_papermill(tmp_path):
    """`study run --preset smoke`: every point through the experiment notebook, then the reports."""
    summary = batch.run_batch(REPO / "grids" / "smoke.yaml", results_dir=tmp_path / "results",
                              figures_dir=tmp_path / "figures", jobs=1, retries=0)
    assert summary.ok, summary.failed
    grid = batch.load_grid(REPO / "grids" / "smoke.yaml")
    assert len(summary.done) + len(summary.skipped) == len(grid.points)
    runs = results.load_runs(tmp_path / "results")
    assert set(runs["model"]) == {"waveform", "spectrogram", "gbt"}
    assert runs["roc_auc"].between(0, 1).all()
    tables, figures = tmp_path / "results" / "tables" / grid.outputs, tmp_path / "figures" / grid.outputs
    table = pd.read_csv(tables / "table1_data_scale.csv")
    ours = table[table["source"] == "ours"]
    assert len(ours) == len(runs)  # one seed per cell in the smoke grid
    for run in runs.itertuples():
        row = ours[(ours["train_size"] == run.train_size) & (ours["model"] == run.model)]
        assert math.isclose(row["roc_auc_mean"].iloc[0], 100 * run.roc_auc, rel_tol=1e-9)
    for name in ("fig3_data_scale.png", "fig3_data_scale.pdf", "qualitative_popularity_bias.png"):
        assert (figures / name).stat().st_size > 0
    assert (tables / "table1_data_scale.md").read_text().count("| ours |") == len(runs)


@pytest.mark.slow
def test_every_report_of_the_default_study_runs_before_any_result_exists(tmp_path):
    """`study report` on a fresh clone: the paper's numbers, empty columns for ours, no failure."""
    summary = batch.run_reports(REPO / "grids" / "default.yaml", results_dir=tmp_path / "results",
                                figures_dir=tmp_path / "figures")
    assert summary.ok, summary.failed
    assert len(summary.reports) == len(batch.load_grid(REPO / "grids" / "default.yaml").reports)
    table = pd.read_csv(tmp_path / "results" / "tables" / "table1_data_scale.csv")
    assert set(table["source"]) == {"paper (Table 1)"}
    assert (tmp_path / "figures" / "fig3_data_scale.pdf").is_file()
    assert (tmp_path / "results" / "tables" / "table2_mtt_waveform.md").is_file()


@pytest.mark.slow
def test_the_loss_ablation_report_runs_before_any_result_exists(tmp_path):
    """The loss report on an empty store: no failure, empty tables, and a choice that says nothing is stored."""
    summary = batch.run_reports(REPO / "grids" / "loss.yaml", results_dir=tmp_path / "results",
                                figures_dir=tmp_path / "figures")
    assert summary.ok, summary.failed
    tables = tmp_path / "results" / "tables" / "loss"
    assert pd.read_csv(tables / "loss_ablation.csv").empty
    assert (tables / "loss_choice.md").is_file()
