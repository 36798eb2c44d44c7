"""House rules for every notebook (STYLE.md, "Notebook shape"): committed clean, one parameters cell whose
names are config fields, thin code cells that call into ``study``."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import papermill
import pytest

from study.batch import EXPERIMENT_DEFAULTS, EXTRA_PARAMETERS, experiment_parameters_cell
from study.config import RunConfig

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
EXPECTED = {"00_tour", "01_experiment", "02_data_scale", "03_mtt_capacity", "04_msd", "05_qualitative", "06_loss"}
EXPERIMENT = Path(__file__).resolve().parents[1] / "notebooks" / "01_experiment.ipynb"
ALLOWED_NAMES = set(RunConfig.flat_fields()) | set(EXTRA_PARAMETERS)


def read(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return notebook


def parameters_cells(notebook) -> list:
    return [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]


def code_cells(notebook) -> list:
    return [c for c in notebook.cells if c.cell_type == "code"]


def test_the_study_notebooks_are_all_there():
    assert {p.stem for p in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    for cell in code_cells(read(path)):
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: a code cell has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_of_known_commented_names_read_alike_by_papermill(path):
    notebook = read(path)
    cells = parameters_cells(notebook)
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters'; expected exactly one"
    cell = cells[0]
    assert cell.cell_type == "code" and cell is code_cells(notebook)[0], f"{path.name}: parameters must be the first code cell"
    lines = [line for line in cell.source.splitlines() if line.strip()]
    tree = ast.parse(cell.source)
    names = [node.targets[0].id for node in tree.body]
    assert all(isinstance(node, ast.Assign) and len(node.targets) == 1 for node in tree.body)
    assert len(names) == len(lines), f"{path.name}: one parameter per line, nothing else"
    unknown = sorted(set(names) - ALLOWED_NAMES)
    assert not unknown, f"{path.name}: parameters {unknown} are neither RunConfig fields nor study.batch.EXTRA_PARAMETERS"
    assert all("#" in line for line in lines), f"{path.name}: every parameter needs a comment (unit or allowed values)"
    # papermill reads the cell with its own parser (a line with two '=' is silently skipped)
    assert list(papermill.inspect_notebook(str(path))) == names, f"{path.name}: papermill reads other parameter names"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_is_thin_and_every_parameter_is_used(path):
    notebook = read(path)
    parameters = set(papermill.inspect_notebook(str(path)))
    used: set[str] = set()
    for cell in code_cells(notebook):
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), \
                f"{path.name}: definitions belong in study/, not in a notebook"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert (node.value.id, node.attr) != ("sys", "path"), f"{path.name}: no sys.path edits"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                assert not (text.startswith(("/", "~")) or text[1:3] in (":\\", ":/")), \
                    f"{path.name}: absolute path {text!r}"
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and "parameters" not in cell.metadata.get("tags", []):
                used.add(node.id)
                if node.id == "config_from_namespace":  # reads every config field by its name from globals()
                    used.update(RunConfig.flat_fields())
    unused = sorted(parameters - used)
    assert not unused, f"{path.name}: parameters {unused} are never used"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_its_question_and_cites_the_paper(path):
    first = read(path).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{path.name}: open with a title"
    assert "§" in first.source, f"{path.name}: the title cell should cite the paper's section"


def test_every_config_field_is_a_parameter_of_the_experiment_notebook():
    """The parameters cell is derived from study/config.py (tools/experiment_parameters.py writes it)."""
    cell = parameters_cells(read(EXPERIMENT))[0]
    assert list(papermill.inspect_notebook(str(EXPERIMENT))) == [*EXPERIMENT_DEFAULTS, *RunConfig.flat_fields()]
    assert cell.source == experiment_parameters_cell(), \
        "01_experiment's parameters cell and study/config.py disagree: run python tools/experiment_parameters.py"
