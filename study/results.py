"""The results store: one folder per run under ``results/runs/<run_id>/``, loaded into tidy tables.

A run folder holds ``config.json``, ``metrics.json``, ``per_tag.csv``, ``curve.csv``,
``protocol.json``, ``provenance.json``, ``predictions.npz``, ``excluded_clips.tsv`` (the clips the
run could not use, and why) and a ``COMPLETE`` marker that lists every file with its size.  The
folder is built under a hidden temporary name inside ``runs/`` and renamed into place in one step,
so a crash never leaves half a result where a reader looks.  Tables and figures are drawn from
these folders only.

Every scored test set becomes a run folder through :func:`record_run` (networks, the GBT
baseline and the released taggers alike), and every runner asks :func:`reusable_run` whether a
stored run already answers its question: a run is the same run only when its config (the run
id) *and* its data (the manifest hash in ``provenance.json``) are the same.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study.config import RunConfig
from study.data.collection import EXCLUDED_COLUMNS, Collection
from study.locks import run_lock
from study.metrics import METRICS, score_test_set
from study.paths import portable_path, resolve_path
from study.provenance import provenance  # re-exported: results.provenance(collection, timings)

RUNS_FOLDER = "runs"
MARKER = "COMPLETE"
EXCLUDED_FILE = "excluded_clips.tsv"
_TEMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


class CorruptRunWarning(UserWarning):
    """A run folder that claims to be complete but cannot be read; it is left out of the tables."""


def runs_dir(results_dir: str | Path = "results") -> Path:
    """The folder of run folders: ``<results_dir>/runs`` (a path already named ``runs`` is used as is).

    A relative ``results_dir`` starts at the repository root (:mod:`study.paths`).
    """
    results_dir = resolve_path(results_dir)
    return results_dir if results_dir.name == RUNS_FOLDER else results_dir / RUNS_FOLDER


def run_path(results_dir: str | Path, run_id: str) -> Path:
    return runs_dir(results_dir) / run_id


# ---- writing ---------------------------------------------------------------------------------
def write_run(run_dir_root: str | Path, run_id: str, *, config: dict, metrics: dict, per_tag: pd.DataFrame,
              curve: pd.DataFrame | None, protocol: dict, provenance: dict, predictions: dict,
              excluded: pd.DataFrame | None = None, overwrite: bool = False) -> Path:
    """Write one run folder atomically and return its path.

    ``run_dir_root`` is the results folder (runs go to its ``runs/``) or the ``runs`` folder itself.
    ``metrics`` = {"overall": {roc_auc, pr_auc, rmse}, "ci": {metric: (lo, hi)}, "excluded": [...],
    "n_test": int}; ``predictions`` = {track_ids, y_true, y_score, tags, is_regression};
    ``excluded`` the clips left out (columns of ``EXCLUDED_COLUMNS``; none when not given).
    An existing complete run is an error unless ``overwrite``; it is then swapped for the new one.
    """
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ValueError(f"run id {run_id!r} must be a non-empty folder name not starting with '.'")
    root = runs_dir(run_dir_root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / run_id
    if is_complete(final) and not overwrite:
        raise FileExistsError(f"{final}: a complete run already exists; pass overwrite=True to replace it")
    arrays = _check_predictions(predictions)
    metrics = _check_metrics(metrics)

    temp = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{run_id}-", dir=root))
    try:
        _write_json(temp / "config.json", config)
        _write_json(temp / "metrics.json", metrics)
        _write_json(temp / "protocol.json", protocol)
        _write_json(temp / "provenance.json", provenance)
        _write_csv(temp / "per_tag.csv", per_tag)
        _write_csv(temp / "curve.csv", curve if curve is not None else pd.DataFrame({"epoch": []}))
        left_out = excluded if excluded is not None else pd.DataFrame(columns=list(EXCLUDED_COLUMNS))
        _write_text(temp / EXCLUDED_FILE, left_out.to_csv(sep="\t", index=False))
        with open(temp / "predictions.npz", "wb") as handle:
            np.savez_compressed(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        # the marker goes last: its presence says every listed file was fully written
        sizes = {p.name: p.stat().st_size for p in sorted(temp.iterdir())}
        _write_json(temp / MARKER, {"run_id": run_id, "files": sizes})
        os.chmod(temp, 0o755)  # mkdtemp makes it private; a result is meant to be read
        with run_lock(root, run_id):  # one publisher at a time (re-entrant inside a training's lock)
            if is_complete(final) and not overwrite:
                raise FileExistsError(f"{final}: another writer stored this run meanwhile; pass overwrite=True "
                                      f"to replace it")
            _publish(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final


def _publish(temp: Path, final: Path) -> None:
    """Rename the finished folder into place; an older folder is moved aside first, then removed."""
    if final.exists():
        aside = final.with_name(f"{_OLD_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
        os.replace(final, aside)
        try:
            os.replace(temp, final)
        except BaseException:
            os.replace(aside, final)  # put the old run back rather than leave nothing
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(temp, final)
    _fsync_dir(final.parent)


def _check_metrics(metrics: dict) -> dict:
    if "overall" not in metrics or "n_test" not in metrics:
        raise ValueError(f"metrics need the keys 'overall' and 'n_test'; got {sorted(metrics)}")
    ci = {name: [float(bound) for bound in bounds] for name, bounds in (metrics.get("ci") or {}).items()}
    for name, bounds in ci.items():
        if len(bounds) != 2:
            raise ValueError(f"metrics ci[{name!r}] must be (lo, hi), got {bounds}")
    return {**metrics, "overall": dict(metrics["overall"]), "ci": ci,
            "excluded": list(metrics.get("excluded") or []), "n_test": int(metrics["n_test"])}


def _check_predictions(predictions: dict) -> dict[str, np.ndarray]:
    """Arrays for predictions.npz, with shapes checked so that a paired bootstrap can trust them."""
    needed = ("track_ids", "y_true", "y_score", "tags", "is_regression")
    missing = [key for key in needed if key not in predictions]
    if missing:
        raise ValueError(f"predictions lack {missing}; expected keys {needed}")
    arrays = {
        "track_ids": np.asarray([str(t) for t in predictions["track_ids"]], dtype=str),
        "tags": np.asarray([str(t) for t in predictions["tags"]], dtype=str),
        "y_true": np.asarray(predictions["y_true"], dtype=np.float32),
        "y_score": np.asarray(predictions["y_score"], dtype=np.float32),
        "is_regression": np.asarray(predictions["is_regression"], dtype=bool),
    }
    expected = (len(arrays["track_ids"]), len(arrays["tags"]))
    for key in ("y_true", "y_score"):
        if arrays[key].shape != expected:
            raise ValueError(f"predictions[{key!r}] has shape {arrays[key].shape}; "
                             f"expected (tracks, tags) = {expected}")
    if arrays["is_regression"].shape != (expected[1],):
        raise ValueError(f"predictions['is_regression'] has shape {arrays['is_regression'].shape}; "
                         f"expected ({expected[1]},), one flag per tag")
    return arrays


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays, tuples and paths to JSON types; NaN/inf to null (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(path: Path, data: Any) -> None:
    _write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    _write_text(path, frame.to_csv(index=False))


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# ---- recording a scored test set --------------------------------------------------------------
def reusable_run(results_dir: str | Path, run_id: str, manifest_hash: str, *, force: bool = False,
                 announce: bool = True) -> Path | None:
    """The stored run that already answers ``run_id`` on these data, or None when it must run.

    A run is the same run only when its config (``run_id``) and its data (``manifest_hash``, the
    identity of the data as read, before any audio is decoded) match a complete run folder.
    ``force`` always runs.  With ``announce`` the decision is printed, with the flag that overrides it.
    """
    run_dir = run_path(results_dir, run_id)
    if force or not is_complete(run_dir):
        return None
    stored = recorded_manifest(run_dir)
    if stored != manifest_hash:
        if announce:
            print(f"{run_id}: the complete run in {run_dir} was made on other data (manifest {stored}, "
                  f"these data {manifest_hash}); running it again")
        return None
    if announce:
        print(f"{run_id}: complete in {run_dir} for these data; skipped (--force redoes it)")
    return run_dir


def recorded_manifest(run_dir: str | Path) -> str | None:
    """The manifest hash of the data a stored run was computed on (None when it recorded none)."""
    try:
        return (read_json(run_dir, "provenance.json").get("data") or {}).get("manifest_hash")
    except (OSError, ValueError, AttributeError):
        return None


def record_run(results_dir: str | Path, run_id: str, *, config: RunConfig, collection: Collection,
               test_ids: list[str], scores: np.ndarray, protocol: dict, timings: dict[str, float],
               curve: pd.DataFrame | None = None, extra_config: dict | None = None,
               extra_metrics: dict | None = None, per_tag_columns: dict | None = None) -> Path:
    """Score a test set and store it as the run folder ``run_id``; the one way every run is recorded.

    ``scores`` (clips, tags) are the song-level predictions for ``test_ids`` in the collection's tag
    order.  Metrics with bootstrap intervals follow ``config.eval`` (seeded by ``config.train.seed``);
    ``protocol`` says how the scores were made (the bootstrap is added); ``extra_config`` (e.g. the
    GBT's tree settings), ``extra_metrics`` (e.g. a released tagger's own figures) and
    ``per_tag_columns`` are stored beside the rest.  Prints one line of metrics, and one line with
    the count of clips the run could not use and where they are listed.
    """
    y_true, tags, is_regression = collection.label_rows(test_ids), list(collection.tags), collection.is_regression
    metrics, per_tag = score_test_set(y_true, scores, tags, is_regression, samples=config.eval.bootstrap_samples,
                                      confidence=config.eval.confidence, seed=config.train.seed)
    metrics.update(extra_metrics or {})
    for column, values in (per_tag_columns or {}).items():
        per_tag[column] = values
    overall, ci, untested = metrics["overall"], metrics["ci"], metrics["excluded"]
    print(f"{run_id} test ({len(test_ids)} clips): " + "  ".join(
        f"{name} {value:.4f} [{ci[name][0]:.4f}, {ci[name][1]:.4f}]" for name, value in overall.items()
        if not np.isnan(value)) + (f"  ({len(untested)} tags without positives or negatives left out, e.g. "
                                   f"{', '.join(untested[:5])})" if untested else ""))
    left_out = _portable_excluded(collection)
    run_dir = write_run(results_dir, run_id, config={**portable_config(config), **(extra_config or {})},
                        metrics=metrics, per_tag=per_tag, curve=curve,
                        protocol={**protocol, "bootstrap": metrics["bootstrap"]},
                        provenance=provenance(collection, timings,
                                              world_size=(protocol.get("training") or {}).get("world_size", 1)),
                        predictions={"track_ids": test_ids, "y_true": y_true, "y_score": scores, "tags": tags,
                                     "is_regression": is_regression},
                        excluded=left_out, overwrite=True)
    if len(left_out):
        reasons = ", ".join(f"{count} {reason}" for reason, count in left_out["reason"].value_counts().items())
        print(f"{run_id}: {len(left_out)} clips could not be used ({reasons}); listed in {run_dir / EXCLUDED_FILE}")
    return run_dir


def portable_config(config: RunConfig) -> dict[str, Any]:
    """``config`` as config.json stores it: folders inside the repository relative to it (study.paths)."""
    stored = config.to_dict()
    for name in ("data_root", "cache_dir"):
        if stored["data"][name]:
            stored["data"][name] = portable_path(stored["data"][name])
    return stored


def _portable_excluded(collection: Collection) -> pd.DataFrame:
    """The collection's left-out clips, with this machine's audio folder taken out of the messages."""
    table = collection.excluded_table()
    root = str(collection.description.get("audio_root") or "")
    if root and len(table):
        table["detail"] = [str(text).replace(root.rstrip("/") + "/", "") for text in table["detail"]]
    return table


# ---- reading ---------------------------------------------------------------------------------
def is_complete(run_dir: str | Path) -> bool:
    """True when the marker exists and every file it lists is present with its recorded size."""
    return _completeness_problem(Path(run_dir)) is None


def _completeness_problem(run_dir: Path) -> str | None:
    marker = run_dir / MARKER
    if not marker.is_file():
        return f"no {MARKER} marker"
    try:
        listed = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError, TypeError) as error:
        return f"unreadable {MARKER} marker ({error})"
    for name, size in listed.items():
        path = run_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, the marker recorded {size}"
    return None


def complete_runs(results_dir: str | Path = "results") -> list[Path]:
    """Run folders that look complete; hidden temporary folders and unfinished ones are ignored."""
    root = runs_dir(results_dir)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        if not (path / MARKER).exists():
            continue  # an unfinished folder from another writer; not a result
        problem = _completeness_problem(path)
        if problem:
            warnings.warn(f"skipping corrupt run {path.name}: {problem}", CorruptRunWarning, stacklevel=3)
            continue
        found.append(path)
    return found


def read_json(run_dir: str | Path, name: str) -> Any:
    return json.loads((Path(run_dir) / name).read_text())


def run_row(run_dir: str | Path) -> dict[str, Any]:
    """One tidy row: run id, every flat config field, metrics with CI bounds, provenance summary."""
    run_dir = Path(run_dir)
    config = read_json(run_dir, "config.json")
    metrics = read_json(run_dir, "metrics.json")
    prov = read_json(run_dir, "provenance.json")
    known, extras = split_config(config)
    row: dict[str, Any] = {"run_id": run_dir.name, **RunConfig.from_dict(known).flat(), **extras}
    overall = metrics.get("overall", {})
    ci = metrics.get("ci", {})
    for name in METRICS:
        row[name] = _number(overall.get(name))
        bounds = ci.get(name) or [None, None]
        row[f"{name}_lo"], row[f"{name}_hi"] = _number(bounds[0]), _number(bounds[1])
    row["n_test"] = metrics.get("n_test")
    row["n_excluded"] = len(metrics.get("excluded") or [])
    code = prov.get("code", {})
    row["git_hash"] = code.get("git_hash")
    row["dirty"] = code.get("dirty")
    row["manifest_hash"] = prov.get("data", {}).get("manifest_hash")
    for key, seconds in (prov.get("timings") or {}).items():
        row[f"seconds_{key}"] = _number(seconds)
    row["created"] = prov.get("created")
    return row


def split_config(config: dict) -> tuple[dict, dict]:
    """Separate RunConfig fields from extras (e.g. a GBT's own parameters), flattening the extras."""
    known_fields = RunConfig.flat_fields()
    sections = {section for section, _ in known_fields.values() if section}
    known: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                if key in sections and sub in known_fields:
                    known.setdefault(key, {})[sub] = sub_value
                else:
                    extras[f"{key}_{sub}"] = sub_value
        elif key in known_fields:
            known[key] = value
        else:
            extras[key] = value
    return known, extras


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _load_each(results_dir: str | Path, read) -> list:
    """Apply ``read(run_dir)`` to each complete run; a run that fails to parse is named and skipped."""
    out = []
    for run_dir in complete_runs(results_dir):
        try:
            out.append(read(run_dir))
        except Exception as error:  # a corrupt file of any kind: report it, keep the others
            warnings.warn(f"skipping corrupt run {run_dir.name}: {type(error).__name__}: {error}",
                          CorruptRunWarning, stacklevel=3)
    return out


def load_runs(results_dir: str | Path = "results") -> pd.DataFrame:
    """Every complete run as one tidy row (see :func:`run_row`), sorted by run id."""
    rows = _load_each(results_dir, run_row)
    columns = ["run_id", *RunConfig.flat_fields(), *(f"{m}{s}" for m in METRICS for s in ("", "_lo", "_hi")),
               "n_test", "n_excluded", "git_hash", "dirty", "manifest_hash", "created"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    ordered = [c for c in columns if c in frame.columns] + [c for c in frame.columns if c not in columns]
    return frame[ordered].sort_values("run_id", ignore_index=True)


def _load_table(results_dir: str | Path, filename: str) -> pd.DataFrame:
    def read(run_dir: Path) -> pd.DataFrame:
        path = run_dir / filename
        table = pd.read_csv(path) if path.stat().st_size else pd.DataFrame()
        table.insert(0, "run_id", run_dir.name)
        return table

    tables = [t for t in _load_each(results_dir, read) if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["run_id"])


def load_per_tag(results_dir: str | Path = "results") -> pd.DataFrame:
    """Long table: run_id, tag, kind, roc_auc, pr_auc, rmse, n_positive (merge with load_runs on run_id)."""
    return _load_table(results_dir, "per_tag.csv")


def load_curves(results_dir: str | Path = "results") -> pd.DataFrame:
    """Long table of training curves: run_id, epoch, train_loss, valid_loss, ... (GBT runs have none)."""
    return _load_table(results_dir, "curve.csv")


def load_excluded(run_dir: str | Path) -> pd.DataFrame:
    """The clips a run could not use and why (empty for runs stored before the list was kept)."""
    path = Path(run_dir) / EXCLUDED_FILE
    if not path.is_file():
        return pd.DataFrame(columns=list(EXCLUDED_COLUMNS))
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def load_predictions(run_dir: str | Path) -> dict[str, Any]:
    """The test predictions of one run: track_ids, tags (lists), y_true, y_score, is_regression (arrays)."""
    run_dir = Path(run_dir)
    if not is_complete(run_dir):
        raise FileNotFoundError(f"{run_dir}: not a complete run ({_completeness_problem(run_dir)})")
    with np.load(run_dir / "predictions.npz", allow_pickle=False) as data:
        return {
            "track_ids": [str(t) for t in data["track_ids"]],
            "tags": [str(t) for t in data["tags"]],
            "y_true": data["y_true"],
            "y_score": data["y_score"],
            "is_regression": data["is_regression"],
        }


__all__ = [
    "CorruptRunWarning", "EXCLUDED_FILE", "MARKER", "complete_runs", "is_complete", "load_curves", "load_excluded",
    "load_per_tag", "load_predictions", "load_runs", "portable_config", "provenance", "read_json",
    "recorded_manifest", "record_run", "reusable_run", "run_path", "run_row", "runs_dir", "split_config",
    "write_run",
]
