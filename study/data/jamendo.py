"""MTG-Jamendo (Bogdanov et al. 2019), read from the dataset repository's split files.

Not in the paper; a public, artist-filtered set of full songs with genre, instrument and
mood/theme tags, closer in kind to the paper's 1.2M-song catalogue than MTT or the MSD.

Expected layout under ``data_root`` (DataConfig.data_root), e.g. a clone of
MTG/mtg-jamendo-dataset with the audio downloaded into it::

    data/splits/split-0/autotagging_top50tags-{train,validation,test}.tsv   (or splits/split-0/,
        split-0/, or the files directly in data_root)
        tab-separated, CRLF line ends, a header; TRACK_ID, ARTIST_ID, ALBUM_ID, PATH, DURATION,
        then one field per tag, named 'category---tag' (e.g. 'genre---rock', 'mood/theme---happy')
    audio/ (or raw_30s/audio/, audio-low/, raw_30s/audio-low/, mp3/, data_root itself, or
        DataConfig.audio_root): the folders 00-99 holding PATH, e.g. 38/917538.mp3; the
        low-quality download's 38/917538.low.mp3 is taken when the full-quality file is absent

Convention (DataConfig.split_convention): ``<subset>/<split>``, both optional, e.g.
``top50tags/split-0`` (the default), ``genre/split-3``, ``instrument``, ``moodtheme/split-1``,
``all/split-2`` (``all`` = the full ``autotagging`` file).  The subset picks the file prefix
``autotagging_<subset>``; the split the folder ``split-<k>``.  The tags are every tag of the
subset's three files, by name; the artist is ARTIST_ID.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from study.config import DataConfig
from study.data.collection import Collection
from study.data.files import (collection_from_files, require_file, require_root,
                              resolve_audio_root)

DEFAULT_SUBSET, DEFAULT_SPLIT = "top50tags", "split-0"
SPLIT_FILES = (("train", "train"), ("valid", "validation"), ("test", "test"))
HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION")
AUDIO_DIRS = ("audio", "raw_30s/audio", "audio-low", "raw_30s/audio-low", "mp3", "")
AUDIO_MARKERS = tuple(f"{i:02d}" for i in range(100))


def parse_convention(convention: str) -> tuple[str, str]:
    """'genre/split-3' -> ('autotagging_genre', 'split-3'); parts may be left out or reordered."""
    subset, split = DEFAULT_SUBSET, DEFAULT_SPLIT
    for part in filter(None, convention.split("/")):
        if re.fullmatch(r"split-\d+", part):
            split = part
        else:
            subset = part
    prefix = "autotagging" if subset in ("all", "autotagging") else (
        subset if subset.startswith("autotagging_") else f"autotagging_{subset}")
    return prefix, split


def read_split_file(path: Path) -> pd.DataFrame:
    """One split file -> rows of track_id, artist, album, path, duration, tags (list of names).

    ``splitlines`` takes CRLF and LF alike; fields are stripped so no '\\r' sticks to a tag name.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    header = tuple(field.strip() for field in lines[0].split("\t")) if lines else ()
    if header[:len(HEADER)] != HEADER:
        raise ValueError(f"{path}: header {header[:len(HEADER)]} is not {HEADER} (+ TAGS): "
                         f"not an MTG-Jamendo split file")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = [field.strip() for field in line.split("\t")]
        if not any(fields):
            continue
        if len(fields) < len(HEADER):
            raise ValueError(f"{path}:{number}: {len(fields)} fields; expected at least {len(HEADER)}")
        track_id, artist, album, audio_path, duration = fields[:len(HEADER)]
        try:
            seconds = float(duration or "nan")
        except ValueError:
            raise ValueError(f"{path}:{number}: DURATION {duration!r} is not a number") from None
        rows.append((track_id, artist, album, audio_path, seconds, [t for t in fields[5:] if t]))
    return pd.DataFrame(rows, columns=["track_id", "artist", "album", "path", "duration", "tags"])


def prefer_existing(audio_root: Path, path: str) -> str:
    """PATH, or its '.low.mp3' twin when only the low-quality download is there."""
    low = re.sub(r"\.mp3$", ".low.mp3", path)
    if low != path and not os.path.isfile(audio_root / path) and os.path.isfile(audio_root / low):
        return low
    return path


def load_jamendo(cfg: DataConfig) -> Collection:
    """MTG-Jamendo as a Collection; see the module docstring for the layout and conventions."""
    prefix, split = parse_convention(cfg.split_convention)
    expected = f"data/splits/{split}/{prefix}-{{train,validation,test}}.tsv and the audio folders 00-99"
    root = require_root(cfg.data_root, "jamendo", expected)
    folders = [f"data/splits/{split}", f"splits/{split}", split, ""]
    frames = []
    for split_name, stem in SPLIT_FILES:
        frame = read_split_file(require_file(root, [f"{prefix}-{stem}.tsv"], folders, dataset="jamendo"))
        frames.append(frame.assign(split=split_name))
    table = pd.concat(frames, ignore_index=True)
    tags = sorted({tag for row_tags in table["tags"] for tag in row_tags})
    column = {tag: j for j, tag in enumerate(tags)}
    labels = np.zeros((len(table), len(tags)), dtype=np.float32)
    for i, row_tags in enumerate(table["tags"]):
        labels[i, [column[t] for t in row_tags]] = 1.0
    audio_root = resolve_audio_root(root, cfg.audio_root, AUDIO_DIRS, AUDIO_MARKERS)
    tracks = pd.DataFrame({"split": table["split"].to_numpy(), "artist": table["artist"].to_numpy(),
                           "path": [prefer_existing(audio_root, p) for p in table["path"]],
                           "album": table["album"].to_numpy(), "duration": table["duration"].to_numpy()},
                          index=pd.Index(table["track_id"], name="track_id"))
    description = {"source": "MTG-Jamendo", "convention": f"{prefix.removeprefix('autotagging_')}/{split}",
                   "split_files": f"{prefix}-{{train,validation,test}}.tsv", "data_root": str(root)}
    return collection_from_files("jamendo", tracks, tags, labels, audio_root=audio_root, description=description,
                                 expected_audio="folders 00-99 holding the PATH column's files")
