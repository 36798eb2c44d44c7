"""Where the study's relative paths point: one rule for every folder and file it names.

A relative path that the study is given in a config (``cache_dir``, ``data_root``), a grid file,
a notebook parameter (``results_dir``, ``tables_dir``, ``figures_dir``, ``grid``) or a
``--results-dir`` / ``--figures-dir`` option starts at the **repository root** when the study
runs from a checkout (the folder holding ``pyproject.toml`` above ``study/``), and at the working
directory when the package is installed elsewhere.  An absolute path is used as given.  So the
command line, a notebook opened from ``notebooks/`` and papermill all read and write the same
``cache/``, ``results/`` and ``figures/``.  Files handed to a command as arguments (audio to tag,
a ``--checkpoint``) are read where the shell says, as any command-line tool does.

Run folders store paths in the portable form of :func:`portable_path` (relative to the repository
root when inside it), so a clone elsewhere reads its own files and no machine's layout is published.
"""
from __future__ import annotations

from pathlib import Path

# the checkout holding the package (installed editable): relative folders start here
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def base_dir() -> Path:
    """The folder relative paths start from: the repository root in a checkout, else the working directory."""
    return REPOSITORY_ROOT if (REPOSITORY_ROOT / "pyproject.toml").is_file() else Path.cwd()


def resolve_path(path: str | Path) -> Path:
    """``path`` as the study reads it: absolute as given (``~`` expanded), relative from :func:`base_dir`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else base_dir() / path


def portable_path(path: str | Path) -> str:
    """``path`` as a run folder records it: relative to :func:`base_dir` when it lies inside, else as given.

    :func:`resolve_path` turns the recorded form back into the file, on any machine with a clone.
    """
    path = Path(path).expanduser()
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(base_dir().resolve()).as_posix()
    except ValueError:  # outside the repository: the user's own choice of place, kept as given
        return str(path)
