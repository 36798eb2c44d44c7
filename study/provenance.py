"""Where a result came from: code version, packages, hardware, data manifest and timings.

Saved as ``provenance.json`` with every run, so that a number in a table can be traced to the
commit, the machine and the exact data it was computed on.  Where the data lay on that machine is
left out (the manifest hash says what they were), so run folders carry no machine's layout.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import study
from study.data.collection import LOCATION_KEYS
from study.paths import REPOSITORY_ROOT

PACKAGES = ("torch", "numpy", "librosa", "scikit-learn", "pandas", "scipy", "soundfile")
# outputs that change with every run must not make the code look modified
_OUTPUT_PATHS = ("results", "figures", "cache", "checkpoints")


def provenance(collection, timings: dict[str, float], *, world_size: int = 1) -> dict[str, Any]:
    """The provenance record of a run on ``collection`` (a study.data.Collection).

    ``world_size``: the processes that trained the model (torchrun), each on its share of every batch.
    """
    return {
        "code": code_version(),
        "packages": package_versions(),
        "hardware": hardware(),
        "world_size": int(world_size),
        "timings": {str(k): float(v) for k, v in timings.items()},
        "data": data_record(collection),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None  # git missing, or too slow
    return done.stdout if done.returncode == 0 else None


def code_version(root: Path | None = None) -> dict[str, Any]:
    """Git commit and whether tracked or new code differs from it; None fields when unknown."""
    root = REPOSITORY_ROOT if root is None else Path(root)
    head = _git(["rev-parse", "HEAD"], root)
    excluded = [f":(exclude){p}" for p in _OUTPUT_PATHS]
    status = _git(["status", "--porcelain", "--", ".", *excluded], root)
    changed = [line[3:] for line in status.splitlines() if line.strip()] if status is not None else []
    return {
        "git_hash": head.strip() if head else None,
        "dirty": None if status is None else bool(changed),
        "changed_files": changed[:50],
        "study_version": study.__version__,
    }


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hardware() -> dict[str, Any]:
    record: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
    }
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # noqa: F811 - imported lazily: the GBT baseline does not need it
        except ImportError:
            return record
    record["torch_threads"] = torch.get_num_threads()
    record["cuda"] = bool(torch.cuda.is_available())
    if record["cuda"]:
        record["cuda_version"] = torch.version.cuda
        record["gpu_count"] = torch.cuda.device_count()
        record["device_name"] = torch.cuda.get_device_name(0)
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        record["device_name"] = "mps"
    else:
        record["device_name"] = "cpu"
    return record


def data_record(collection) -> dict[str, Any]:
    """The manifest hash and what the collection says about itself (not where its files are)."""
    regression = sorted(collection.regression_tags)
    return {
        "name": collection.name,
        "manifest_hash": collection.manifest_hash(),
        "description": {key: value for key, value in collection.description.items() if key not in LOCATION_KEYS},
        "counts": collection.counts(),
        "n_tracks": len(collection),
        "n_tags": len(collection.tags),
        "n_regression_tags": len(regression),
    }
