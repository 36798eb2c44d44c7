"""Files on disk: the picklable audio loader, and the checks and parsers the real-dataset readers share.

Each reader (MTT, MSD, MTG-Jamendo, catalogue) parses its own label files into a track table
(split, artist, path relative to an audio folder) and labels by tag name, then hands both to
:func:`collection_from_files`, which checks that the audio exists, reports and skips what is
missing (a few lost files must not stop a study), prints the counts per split and returns the
:class:`Collection`.  Undecodable files are found later, by the cache, through :class:`FileLoader`.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from study.audio import AudioError, load_audio
from study.data.collection import SPLITS, Collection
from study.paths import resolve_path

MISSING_SHOWN = 10  # paths printed in the missing-audio summary; the description lists all


class FileLoader:
    """``loader(track_id, row)`` decoding ``audio_root / row['path']`` to 16 kHz mono float32.

    A plain class holding only a path string, so the cache's worker processes can pickle it.
    Every failure comes out as :class:`study.audio.AudioError` naming the file, which the cache
    catches, reports and skips.
    """

    def __init__(self, audio_root: str | Path, *, sample_rate: int = 16000) -> None:
        self.audio_root = str(audio_root)
        self.sample_rate = sample_rate

    def path(self, row: pd.Series) -> Path:
        return Path(self.audio_root) / str(row["path"])

    def __call__(self, track_id: str, row: pd.Series) -> np.ndarray:
        path = self.path(row)
        try:
            return load_audio(path, self.sample_rate)
        except AudioError:
            raise
        except Exception as error:  # a decoder or resampler failure: name the file all the same
            raise AudioError(f"{path} (track {track_id}): cannot load audio "
                             f"({type(error).__name__}: {error})") from None

    def __repr__(self) -> str:
        return f"FileLoader({self.audio_root!r}, sample_rate={self.sample_rate})"


# ---- locating the files a reader expects ----------------------------------------------------------
def require_root(data_root: str, dataset: str, expected: str) -> Path:
    """The dataset folder, or an error that says what should be in it."""
    if not data_root:
        raise ValueError(f"dataset {dataset!r} needs data_root — give --data_root, the folder holding {expected}")
    root = resolve_path(data_root).resolve()  # a relative data_root starts at the repository root (study.paths)
    if not root.exists():
        raise FileNotFoundError(f"{dataset}: data_root {root} does not exist — give --data_root the folder holding "
                                f"{expected}")
    return root


def find_file(root: Path, names: Sequence[str], subdirs: Sequence[str] = ("",)) -> Path | None:
    """First of ``root/subdir/name`` that is a file (subdirs tried in order), else None."""
    for subdir in subdirs:
        for name in names:
            candidate = root / subdir / name
            if candidate.is_file():
                return candidate
    return None


def require_file(root: Path, names: Sequence[str], subdirs: Sequence[str] = ("",), *, dataset: str) -> Path:
    """Like :func:`find_file`, but a missing file is an error listing every place looked at."""
    found = find_file(root, names, subdirs)
    if found is None:
        tried = [str(root / subdir / name) for subdir in subdirs for name in names]
        raise FileNotFoundError(f"{dataset}: expected {' or '.join(names)} under {root}; "
                                f"looked for: {', '.join(tried)}")
    return found


def resolve_audio_root(data_root: Path, configured: str, candidates: Sequence[str], markers: Sequence[str]) -> Path:
    """The folder that track paths are relative to.

    ``configured`` (a DataConfig ``audio_root``, relative to data_root unless absolute) wins;
    otherwise the first candidate subfolder holding one of the ``markers`` (e.g. MTT's folder
    ``c``), else data_root itself, where the missing-file report will then say what was expected.
    """
    if configured:
        return data_root / Path(configured).expanduser()
    for candidate in candidates:
        folder = data_root / candidate
        if any((folder / marker).exists() for marker in markers):
            return folder
    return data_root


# ---- musicnn-training's index files (MTT and MSD alike) -------------------------------------------
def read_python_list(path: Path) -> list[str]:
    """The list literal of a file like output_labels_mtt.txt ("MTT_LABELS = ['guitar', ...]")."""
    text = path.read_text()
    try:
        return [str(v) for v in ast.literal_eval(text[text.index("["):text.rindex("]") + 1])]
    except (ValueError, SyntaxError) as error:
        raise ValueError(f"{path}: expected a Python list of tag names ({error})") from None


def read_vector_tsv(path: Path, size: int) -> tuple[list[str], np.ndarray]:
    """``id <TAB> [v1, ..., v_size]`` lines (musicnn-training's *_gt_*.tsv) -> (ids, (n, size) float32).

    Vectors shaped (size, 1) are flattened; anything else of the wrong size is an error naming the line.
    """
    ids, vectors = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            track_id, literal = line.split("\t", 1)
            vector = np.asarray(ast.literal_eval(literal.strip()), dtype=np.float32).reshape(-1)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"{path}:{number}: expected 'id<TAB>[{size} numbers]' ({error})") from None
        if vector.size != size:
            raise ValueError(f"{path}:{number}: a vector of {vector.size} values; expected {size}")
        ids.append(track_id.strip())
        vectors.append(vector)
    return ids, np.stack(vectors) if vectors else np.zeros((0, size), np.float32)


# ---- missing audio ---------------------------------------------------------------------------------
def missing_files(audio_root: str | Path, paths: Iterable[str]) -> list[str]:
    """Full paths of the files that do not exist, in input order."""
    root = str(audio_root)
    return [full for full in (os.path.join(root, p) for p in paths) if not os.path.isfile(full)]


def check_audio_files(dataset: str, audio_root: str | Path, paths: Sequence[str], *, expected: str = "") -> list[str]:
    """Print a summary of the audio files that are missing and return their full paths.

    A few missing files are reported and skipped; when *every* file is missing the audio folder
    is wrong, which is an error saying where the files were expected.
    """
    missing = missing_files(audio_root, paths)
    if paths and len(missing) == len(paths):
        hint = f" ({expected})" if expected else ""
        raise FileNotFoundError(
            f"{dataset}: none of the {len(paths)} audio files exists under {audio_root}{hint}; "
            f"first expected file: {missing[0]}")
    if missing:
        print(f"{dataset}: {len(missing)} of {len(paths)} audio files are missing and skipped:")
        for path in missing[:MISSING_SHOWN]:
            print(f"  missing: {path}")
        if len(missing) > MISSING_SHOWN:
            print(f"  ... and {len(missing) - MISSING_SHOWN} more (Collection.excluded lists all)")
    return missing


# ---- the Collection every reader returns ----------------------------------------------------------
def fixed_train_order(train_ids: Sequence[str], seed: int = 0) -> list[str]:
    """A seeded shuffle of the training ids: the first N of it are the train_size=N subset.

    The seed is fixed (not the run seed), so smaller training sets are subsets of larger ones and
    every run with the same train_size sees the same tracks (paper §5.1, footnote 3).
    """
    order = np.random.default_rng(seed).permutation(len(train_ids))
    return [str(train_ids[i]) for i in order]


def collection_from_files(
    name: str,
    tracks: pd.DataFrame,
    tags: Sequence[str],
    labels: np.ndarray,
    *,
    audio_root: Path,
    description: dict,
    regression_tags: frozenset[str] = frozenset(),
    train_order: Sequence[str] | None = None,
    expected_audio: str = "",
) -> Collection:
    """Skip tracks whose audio is missing (listed in ``description['missing']`` and, with their track ids, in
    the collection's ``excluded``), print the counts per
    split and build the Collection with a :class:`FileLoader` over ``audio_root``.

    ``tracks`` is indexed by track id (str) with columns split, artist, path (relative to audio_root).
    """
    tracks = tracks.copy()
    tracks.index = tracks.index.astype(str)
    tracks.index.name = "track_id"
    if tracks.index.has_duplicates:
        duplicated = sorted(set(tracks.index[tracks.index.duplicated()]))[:5]
        raise ValueError(f"{name}: duplicated track ids {duplicated}")
    missing = check_audio_files(name, audio_root, list(tracks["path"]), expected=expected_audio)
    missing_set = set(missing)
    keep = np.array([os.path.join(str(audio_root), p) not in missing_set for p in tracks["path"]], dtype=bool)
    excluded = tuple({"track_id": track_id, "split": row["split"], "path": str(row["path"]), "reason": "missing",
                      "detail": "no such file under the audio folder"} for track_id, row in tracks[~keep].iterrows())
    tracks, labels = tracks[keep], np.asarray(labels, dtype=np.float32)[keep]
    kept = set(tracks.index)
    train_ids = list(tracks.index[tracks["split"] == "train"])
    order = fixed_train_order(train_ids) if train_order is None else [t for t in train_order if t in kept]
    description = {**description, "audio_root": str(audio_root), "missing": missing}
    collection = Collection(name, tracks, list(tags), labels, FileLoader(audio_root),
                            frozenset(regression_tags), description, order, excluded)
    counts = collection.counts()
    convention = description.get("convention", "")
    print(f"{name}{f' ({convention})' if convention else ''}: loaded "
          + ", ".join(f"{split} {counts[split]}" for split in SPLITS)
          + f" tracks; {len(tags)} tags; {len(missing)} missing audio files skipped")
    return collection
