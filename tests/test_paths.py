"""One path rule: relative paths start at the repository root in a checkout, whatever the working directory."""
from __future__ import annotations

import matplotlib.figure
import numpy as np
import pandas as pd

from study import paths, report, results
from study.config import RunConfig
from study.data.cache import cache_folder
from study.data.collection import Collection
from study.experiment import checkpoint_dir


def test_relative_paths_start_at_the_repository_root_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # e.g. a notebook run from notebooks/
    root = paths.REPOSITORY_ROOT
    assert paths.base_dir() == root and (root / "pyproject.toml").is_file()
    assert paths.resolve_path("results") == root / "results"
    assert results.runs_dir("results") == root / "results" / "runs"
    cfg = RunConfig.from_flat("smoke")
    assert checkpoint_dir(cfg) == root / "cache" / "smoke" / "checkpoints" / cfg.run_id
    collection = Collection("toy", pd.DataFrame({"split": ["test"], "artist": [""], "path": [""]}, index=["a"]),
                            ["x"], np.ones((1, 1)), loader=None)
    assert cache_folder(collection, cfg.data) == root / "cache" / "smoke" / f"toy-{collection.manifest_hash()}"
    absolute = tmp_path / "elsewhere"
    assert paths.resolve_path(absolute) == absolute and results.runs_dir(absolute) == absolute / "runs"


def test_tables_and_figures_follow_the_same_rule(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "REPOSITORY_ROOT", tmp_path)  # a checkout elsewhere
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path.parent)
    csv_path, _ = report.write_table(pd.DataFrame({"a": [1]}), "t", "results/tables")
    png, _ = report.save_figure(matplotlib.figure.Figure(), "f", "figures")
    assert csv_path == tmp_path / "results" / "tables" / "t.csv" and png == tmp_path / "figures" / "f.png"


def test_portable_paths_are_relative_inside_the_repository_and_resolve_back(tmp_path):
    inside = paths.REPOSITORY_ROOT / "cache" / "default" / "checkpoints" / "run" / "best.pt"
    assert paths.portable_path(inside) == "cache/default/checkpoints/run/best.pt"
    assert paths.resolve_path(paths.portable_path(inside)) == inside
    assert paths.portable_path("results") == "results"
    assert paths.portable_path(tmp_path / "mine") == str(tmp_path / "mine")  # outside: the user's own place
