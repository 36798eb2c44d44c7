"""MagnaTagATune (paper §4, Tables 2-3), read from the files its users already hold.

Expected layout under ``data_root`` (DataConfig.data_root)::

    annotations_final.csv   tab-separated, every field double-quoted: clip_id, 188 binary tag
                            columns, mp3_path (e.g. "f/american_bach_soloists-...-30-59.mp3")
    clip_info_final.csv     same format; its artist column gives each clip's artist (optional:
                            without it the artist is the mp3 name's part before the first '-')
    0/ ... 9/ a/ ... f/     the mp3 folders; also found in data_root/mp3/ or data_root/audio/,
                            or wherever DataConfig.audio_root points

    # convention 'musicnn' (jordipons/musicnn-training), in data_root, data_root/index,
    # data_root/index/mtt or data_root/data/index/mtt:
    index_mtt.tsv           clip_id <TAB> mp3 path
    {train,val,test}_gt_mtt.tsv   clip_id <TAB> Python list of 50 floats
    output_labels_mtt.txt   optional: "MTT_LABELS = [...]", the tag order of those vectors

    # convention 'sota' (minzwon/sota-music-tagging-models), in data_root/split/mtat or data_root:
    {train,valid,test}.npy  arrays of "row <TAB> mp3 path"; row is the 0-based ROW of
                            annotations_final.csv (not the clip_id)
    tags.npy, binary.npy    the 50 tag names and the (rows, 50) label matrix (binary.npy may
                            also sit in data_root/data/)
    (object arrays among them are pickles: read with the restricted unpickler of
    study/data/pickles.py, which admits only strings, numbers and numpy arrays: no code runs on load)

Conventions (DataConfig.split_convention):

- ``pons2018`` (default): split by mp3 folder (0-b train, c valid, d-f test), the top-50 tags
  by count over all 25,863 rows, clips without any top-50 tag kept, the three broken clips
  35644, 55753, 57881 dropped: 18,706 / 1,825 / 5,329 clips.
- ``clean``: as pons2018, and clips without any top-50 tag dropped: 15,247 / 1,529 / 4,332.
- ``musicnn``: the clips and labels of musicnn-training's index files, labels named by the
  tag list and, when annotations_final.csv is there, checked column by column against it.
- ``sota``: the clips of the sota repository's split files, labels from its binary.npy.
- ``''``: pons2018 when annotations_final.csv exists, else musicnn, else sota.

Labels are always matched by tag name: the published top-50 lists disagree on the order of
'metal' and 'female voice', which tie (docs/paper-details.md, "Datasets").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study.config import DataConfig
from study.data.collection import Collection
from study.data.files import (collection_from_files, find_file, read_python_list,
                              read_vector_tsv, require_file, require_root, resolve_audio_root)
from study.data.pickles import load_npy

FOLDER_SPLIT = {**{f: "train" for f in "0123456789ab"}, "c": "valid", **{f: "test" for f in "def"}}
BROKEN_CLIPS = ("35644", "55753", "57881")  # 35644 missing, 55753 and 57881 corrupt (docs: "Datasets")
N_TOP = 50
CONVENTIONS = ("pons2018", "clean", "musicnn", "sota")
# docs/paper-details.md, "Datasets": the top-50 by descending count, in the order of musicnn-training's
# vectors; used to name those vectors when the dataset holds no tag list of its own.
MTT_TOP50 = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)
EXPECTED = "annotations_final.csv, clip_info_final.csv and the mp3 folders 0-9, a-f"
MUSICNN_DIRS = ("", "index", "index/mtt", "data/index/mtt")
SOTA_DIRS = ("split/mtat", "")
AUDIO_DIRS = ("", "mp3", "audio")


# ---- the original MagnaTagATune files ---------------------------------------------------------------
def read_quoted_table(path: Path) -> pd.DataFrame:
    """annotations_final.csv / clip_info_final.csv: tab-separated, fields double-quoted, all text."""
    return pd.read_csv(path, sep="\t", quotechar='"', dtype=str, keep_default_na=False)


def read_annotations(root: Path) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """(table with clip_id and mp3_path in file row order, the 188 tag names, (rows, tags) 0/1 labels)."""
    path = require_file(root, ["annotations_final.csv"], dataset="mtt")
    table = pd.read_csv(path, sep="\t", quotechar='"', dtype={"clip_id": str, "mp3_path": str}, keep_default_na=False)
    for column in ("clip_id", "mp3_path"):
        if column not in table.columns:
            raise ValueError(f"{path}: no {column!r} column; expected clip_id, 188 tag columns, mp3_path "
                             f"(tab-separated), found {list(table.columns)[:5]}...")
    tags = [c for c in table.columns if c not in ("clip_id", "mp3_path")]
    try:
        labels = table[tags].to_numpy(dtype=np.float32)
    except ValueError as error:
        raise ValueError(f"{path}: tag columns must hold 0 or 1 ({error})") from None
    return table[["clip_id", "mp3_path"]].reset_index(drop=True), tags, labels


def top_tags(tags: list[str], labels: np.ndarray, count: int = N_TOP) -> list[str]:
    """The ``count`` most frequent tags over all rows; ties go to the alphabetically first name,
    so the choice never depends on column order ('metal' and 'female voice' tie)."""
    totals = labels.sum(axis=0)
    ranked = sorted(range(len(tags)), key=lambda j: (-totals[j], tags[j]))
    return [tags[j] for j in ranked[:count]]


def clip_artists(root: Path, clip_ids: pd.Series, mp3_paths: pd.Series) -> tuple[list[str], str]:
    """Artist per clip from clip_info_final.csv, else from the mp3 name ('artist-album-...')."""
    info_path = find_file(root, ["clip_info_final.csv"])
    if info_path is not None:
        info = read_quoted_table(info_path)
        if {"clip_id", "artist"} <= set(info.columns):
            by_clip = dict(zip(info["clip_id"], info["artist"]))
            return [by_clip.get(c, "") for c in clip_ids], info_path.relative_to(root).as_posix()
        print(f"mtt: {info_path} has no clip_id/artist columns; artists taken from the mp3 names")
    return [Path(p).name.split("-")[0] for p in mp3_paths], "mp3 file names"


def folder_split(mp3_path: str) -> str:
    folder = mp3_path.split("/")[0]
    if folder not in FOLDER_SPLIT:
        raise ValueError(f"mtt: mp3 path {mp3_path!r} is not in one of the folders 0-9, a-f")
    return FOLDER_SPLIT[folder]


def _tracks(clip_ids, splits, mp3_paths, artists) -> pd.DataFrame:
    return pd.DataFrame({"split": list(splits), "artist": list(artists), "path": list(mp3_paths)},
                        index=pd.Index([str(c) for c in clip_ids], name="track_id"))


# ---- conventions ------------------------------------------------------------------------------------
def _by_folder(root: Path, convention: str):
    """pons2018 / clean: folder splits of annotations_final.csv with the top-50 tags."""
    table, all_tags, all_labels = read_annotations(root)
    tags = top_tags(all_tags, all_labels)
    labels = all_labels[:, [all_tags.index(t) for t in tags]]
    keep = ~table["clip_id"].isin(BROKEN_CLIPS).to_numpy()
    untagged = labels.sum(axis=1) == 0
    n_untagged = int((untagged & keep).sum())
    description = {"broken_dropped": int((~keep).sum()), "untagged_clips": n_untagged,
                   "untagged_dropped": n_untagged if convention == "clean" else 0}
    if convention == "clean":
        keep &= ~untagged
    print(f"mtt ({convention}): dropped {description['broken_dropped']} known-broken clips {list(BROKEN_CLIPS)}"
          + (f" and {n_untagged} clips without a top-50 tag" if convention == "clean" else
             f"; kept {n_untagged} clips without a top-50 tag"))
    artists, description["artist_source"] = clip_artists(root, table["clip_id"], table["mp3_path"])
    table = table[keep]
    tracks = _tracks(table["clip_id"], map(folder_split, table["mp3_path"]), table["mp3_path"],
                     np.asarray(artists, dtype=object)[keep])
    return tracks, tags, labels[keep], description


def musicnn_tag_names(root: Path) -> tuple[list[str], str]:
    """The tag order of musicnn-training's vectors: its output_labels_mtt.txt, else the built-in MTT_TOP50."""
    path = find_file(root, ["output_labels_mtt.txt"], MUSICNN_DIRS)
    if path is None:
        return list(MTT_TOP50), "built-in list"
    return read_python_list(path), path.relative_to(root).as_posix()


def name_columns_by_content(vectors: np.ndarray, clip_ids: list[str], names: list[str], root: Path) -> list[str]:
    """Check each label column against annotations_final.csv's column of the same name; a column
    that matches another listed tag instead (e.g. 'metal' and 'female voice' swapped) takes that
    name.  Without annotations_final.csv the names are used as given."""
    if find_file(root, ["annotations_final.csv"]) is None:
        return names
    table, all_tags, all_labels = read_annotations(root)
    rows = pd.Index(table["clip_id"]).get_indexer(clip_ids)
    if (rows < 0).any():
        raise ValueError(f"mtt: clip {clip_ids[int(np.argmax(rows < 0))]} of the musicnn index files is not "
                         f"in annotations_final.csv")
    unknown = [n for n in names if n not in all_tags]
    if unknown:
        raise ValueError(f"mtt: tags {unknown} of the musicnn tag list are not columns of annotations_final.csv")
    reference = {n: all_labels[rows, all_tags.index(n)] for n in names}
    named = list(names)
    for j, name in enumerate(names):
        if np.array_equal(vectors[:, j], reference[name]):
            continue
        matches = [n for n in names if np.array_equal(vectors[:, j], reference[n])]
        if len(matches) != 1:
            raise ValueError(f"mtt: label column {j} of the musicnn files does not match annotations_final.csv's "
                             f"{name!r} column, nor exactly one other top-50 tag ({matches})")
        print(f"mtt: musicnn label column {j} holds {matches[0]!r}, not {name!r}: named by content")
        named[j] = matches[0]
    if len(set(named)) != len(named):
        raise ValueError(f"mtt: the musicnn label columns do not name {len(names)} distinct tags: {named}")
    return named


def _musicnn(root: Path):
    index_path = require_file(root, ["index_mtt.tsv"], MUSICNN_DIRS, dataset="mtt (musicnn)")
    index = pd.read_csv(index_path, sep="\t", header=None, names=["clip_id", "path"], dtype=str)
    paths = dict(zip(index["clip_id"], index["path"]))
    ids, splits, vectors = [], [], []
    for split, prefix in (("train", "train"), ("valid", "val"), ("test", "test")):
        folders = [str(index_path.parent.relative_to(root)), *MUSICNN_DIRS]
        split_ids, split_vectors = read_vector_tsv(
            require_file(root, [f"{prefix}_gt_mtt.tsv"], folders, dataset="mtt (musicnn)"), N_TOP)
        ids += split_ids
        splits += [split] * len(split_ids)
        vectors.append(split_vectors)
    absent = [c for c in ids if c not in paths]
    if absent:
        raise ValueError(f"{index_path}: no path for clips {absent[:5]} listed in the *_gt_mtt.tsv files")
    vectors = np.concatenate(vectors)
    names, names_source = musicnn_tag_names(root)
    tags = name_columns_by_content(vectors, ids, names, root)
    mp3_paths = [paths[c] for c in ids]
    artists, artist_source = clip_artists(root, pd.Series(ids), pd.Series(mp3_paths))
    tracks = _tracks(ids, splits, mp3_paths, artists)
    details = {"index": index_path.relative_to(root).as_posix(), "tag_names": names_source,
               "artist_source": artist_source}  # paths relative to data_root: moved data keep their manifest hash
    return tracks, tags, vectors, details


def _load_strings(path: Path) -> list[str]:
    # a string array, or an object array (a pickle, as the sota repository's scripts save some),
    # whose payload only the restricted unpickler reads
    values = load_npy(path)
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]


def _sota(root: Path):
    tags_path = require_file(root, ["tags.npy"], SOTA_DIRS, dataset="mtt (sota)")
    split_dir = tags_path.parent
    binary_path = require_file(root, ["binary.npy"], [str(split_dir.relative_to(root)), "data", ""],
                               dataset="mtt (sota)")
    tags = _load_strings(tags_path)
    binary = np.load(binary_path).astype(np.float32)
    if binary.ndim != 2 or binary.shape[1] != len(tags):
        raise ValueError(f"{binary_path}: shape {binary.shape}, expected (rows of annotations_final.csv, {len(tags)})")
    table, _, _ = read_annotations(root)
    if len(binary) != len(table):
        raise ValueError(f"{binary_path}: {len(binary)} rows but annotations_final.csv has {len(table)}; "
                         f"binary.npy must be indexed by annotation rows")
    rows, splits, paths = [], [], []
    for split, stem in (("train", "train"), ("valid", "valid"), ("test", "test")):
        split_path = require_file(root, [f"{stem}.npy"], [str(split_dir.relative_to(root))], dataset="mtt (sota)")
        for entry in _load_strings(split_path):
            row, path = entry.split("\t", 1)
            row = int(row)
            if not 0 <= row < len(table) or table["mp3_path"].iat[row] != path:
                found = table["mp3_path"].iat[row] if 0 <= row < len(table) else "nothing"
                raise ValueError(f"{split_path}: entry {entry!r}: row {row} of annotations_final.csv holds {found}; "
                                 f"the sota split indexes annotation ROWS (0-based), not clip_ids")
            rows.append(row)
            splits.append(split)
            paths.append(path)
    clip_ids = table["clip_id"].iloc[rows]
    artists, artist_source = clip_artists(root, clip_ids, pd.Series(paths))
    tracks = _tracks(clip_ids, splits, paths, artists)
    # relative to data_root: which split files, not where this machine keeps them (moved data keep their hash)
    details = {"split_dir": split_dir.relative_to(root).as_posix(), "artist_source": artist_source}
    return tracks, tags, binary[rows], details


def detect_convention(root: Path) -> str:
    if find_file(root, ["annotations_final.csv"]) is not None:
        return "pons2018"
    if find_file(root, ["index_mtt.tsv"], MUSICNN_DIRS) is not None:
        return "musicnn"
    if find_file(root, ["tags.npy"], SOTA_DIRS) is not None:
        return "sota"
    raise FileNotFoundError(f"mtt: found none of annotations_final.csv, index_mtt.tsv or split/mtat/tags.npy "
                            f"under {root}; expected {EXPECTED}")


def load_mtt(cfg: DataConfig) -> Collection:
    """MagnaTagATune as a Collection; see the module docstring for layouts and conventions."""
    root = require_root(cfg.data_root, "mtt", EXPECTED)
    convention = cfg.split_convention or detect_convention(root)
    if convention not in CONVENTIONS:
        raise ValueError(f"mtt: unknown split_convention {convention!r} — use one of {', '.join(CONVENTIONS)}")
    if convention == "musicnn":
        tracks, tags, labels, details = _musicnn(root)
    elif convention == "sota":
        tracks, tags, labels, details = _sota(root)
    else:
        tracks, tags, labels, details = _by_folder(root, convention)
    audio_root = resolve_audio_root(root, cfg.audio_root, AUDIO_DIRS, markers=list(FOLDER_SPLIT))
    description = {"source": "MagnaTagATune", "convention": convention, "data_root": str(root), **details}
    return collection_from_files("mtt", tracks, tags, labels, audio_root=audio_root, description=description,
                                 expected_audio="mp3 folders 0-9, a-f")
