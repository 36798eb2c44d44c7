"""Write the parameters cell of notebooks/01_experiment.ipynb from study/config.py.

Every RunConfig field becomes a parameter of the same name, None (the preset's value), with the
comment that follows the field in study/config.py; the model and dataset names come from their
registries.  Run it after adding, renaming or documenting a config field:

    python tools/experiment_parameters.py

tests/test_notebooks.py fails while the committed cell and the config disagree.
"""
from __future__ import annotations

import nbformat

from study.batch import experiment_parameters_cell
from study.paths import REPOSITORY_ROOT

NOTEBOOK = REPOSITORY_ROOT / "notebooks" / "01_experiment.ipynb"


def main() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = experiment_parameters_cell()
    nbformat.write(notebook, NOTEBOOK)
    print(f"{NOTEBOOK}: parameters cell written ({len(cell.source.splitlines())} parameters)")


if __name__ == "__main__":
    main()
