"""Million Song Dataset with the Lee et al. split (paper §4, Table 4), from the files users hold.

Expected layout under ``data_root`` (DataConfig.data_root)::

    # convention 'lee' (the split of Lee et al. 2017, as in the sota repository's split/msd/):
    filtered_list_train.cP   Python-2 pickle, a list of MSD ids: the first 201,680 are train, the rest valid
    filtered_list_test.cP    Python-2 pickle, the test ids
    msd_id_to_tag_vector.cP  Python-2 pickle, dict MSD id -> 50 values (array or list, (50, 1) or (50,))
    50tagList.txt            the 50 tag names, one a line, in the vectors' order

    # convention 'musicnn' (jordipons/musicnn-training), in data_root, index, index/msd or data/index/msd:
    index_msd.tsv                  MSD id <TAB> audio path
    {train,val,test}_gt_msd.tsv    MSD id <TAB> Python list of 50 floats
    (tag names: 50tagList.txt or output_labels_msd.txt when present, else the Lee list below)

    # audio: in data_root/audio/, data_root/mp3/ or data_root (or DataConfig.audio_root), at
    # X/Y/Z/<MSD id>.mp3 with X, Y, Z the id's 3rd-5th characters (TRABC... -> A/B/C/TRABC....mp3),
    # unless a mapping gives the paths (first found wins):
    audio_paths.tsv                MSD id <TAB> path: your own mapping
    index_msd.tsv                  musicnn-training's mapping
    MSD_id_to_7D_id.pkl + 7D_id_to_path.pkl   the 7digital-preview mapping shipped with the Lee split

    unique_tracks.txt        optional, the MSD's "track<SEP>song<SEP>artist<SEP>title" list: artists

Conventions (DataConfig.split_convention): ``lee`` (default when the pickles are there) or
``musicnn``.  Python-2 pickles (the .cP and .pkl files) are read with ``encoding='latin1'`` by the
restricted unpickler of study/data/pickles.py, which admits only lists, dicts, strings, numbers and
numpy arrays, so a split file cannot run code on load.  Labels are matched by tag name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study.config import DataConfig
from study.data.collection import Collection
from study.data.files import (collection_from_files, find_file, read_python_list,
                              read_vector_tsv, require_file, require_root, resolve_audio_root)
from study.data.pickles import load_pickle

LEE_TRAIN_SIZE = 201_680  # sota split/msd/README: the first 201,680 ids of filtered_list_train.cP train
N_TAGS = 50
# The 50 Last.fm tags of the Lee split, in its vectors' order (50tagList.txt); used only when the
# dataset folder holds no tag list of its own.
LEE_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
    "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy",
)
CONVENTIONS = ("lee", "musicnn")
EXPECTED = ("filtered_list_train.cP, filtered_list_test.cP, msd_id_to_tag_vector.cP and 50tagList.txt "
            "(or musicnn-training's index_msd.tsv and *_gt_msd.tsv), and the audio in audio/X/Y/Z/<id>.mp3")
INDEX_DIRS = ("", "index", "index/msd", "data/index/msd")
AUDIO_DIRS = ("audio", "mp3", "")


def load_py2_pickle(path: Path):
    """A cPickle file written by Python 2: its byte strings are decoded as latin1, and only lists,
    dicts, strings, numbers and numpy arrays are unpickled (a split file must not run code)."""
    return load_pickle(path, encoding="latin1")


def _text(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def tag_vector(value, where: str) -> np.ndarray:
    vector = np.asarray(value, dtype=np.float32).reshape(-1)  # (50, 1) or (50,) -> (50,)
    if vector.size != N_TAGS:
        raise ValueError(f"{where}: a tag vector of {vector.size} values; expected {N_TAGS}")
    return vector


def tag_names(root: Path) -> tuple[list[str], str]:
    """50tagList.txt (one a line) or output_labels_msd.txt (a Python list), else the Lee list."""
    path = find_file(root, ["50tagList.txt"], INDEX_DIRS)
    if path is not None:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        path = find_file(root, ["output_labels_msd.txt"], INDEX_DIRS)
        if path is None:
            return list(LEE_TAGS), "built-in Lee list"
        names = read_python_list(path)
    if len(names) != N_TAGS or len(set(names)) != N_TAGS:
        raise ValueError(f"{path}: expected {N_TAGS} distinct tag names, found {len(set(names))}")
    return names, path.relative_to(root).as_posix()


def read_id_table(path: Path) -> dict[str, str]:
    """``id <TAB> value`` lines (index_msd.tsv, audio_paths.tsv)."""
    table = pd.read_csv(path, sep="\t", header=None, names=["id", "value"], dtype=str, usecols=[0, 1])
    return dict(zip(table["id"].str.strip(), table["value"].str.strip()))


def default_path(msd_id: str) -> str:
    """TRABCDE... -> A/B/C/TRABCDE....mp3: the 3rd-5th characters name the folders."""
    return f"{msd_id[2]}/{msd_id[3]}/{msd_id[4]}/{msd_id}.mp3"


def audio_paths(root: Path, ids: list[str]) -> tuple[list[str], str]:
    """Each id's audio path relative to the audio folder, from the first mapping found."""
    for name in ("audio_paths.tsv", "index_msd.tsv"):
        path = find_file(root, [name], INDEX_DIRS)
        if path is not None:
            mapping = read_id_table(path)
            absent = [i for i in ids if i not in mapping]
            if absent:
                print(f"msd: {len(absent)} ids have no path in {path} (e.g. {absent[0]}); "
                      f"they take the X/Y/Z/<id>.mp3 layout")
            return [mapping.get(i) or default_path(i) for i in ids], path.relative_to(root).as_posix()
    to_7d, to_path = find_file(root, ["MSD_id_to_7D_id.pkl"]), find_file(root, ["7D_id_to_path.pkl"])
    if to_7d is not None and to_path is not None:
        msd_to_7d = {_text(k): v for k, v in load_py2_pickle(to_7d).items()}
        paths_7d = {_text(k): _text(v) for k, v in load_py2_pickle(to_path).items()}
        return [paths_7d.get(_text(msd_to_7d.get(i, "")), default_path(i)) for i in ids], "7digital mapping"
    return [default_path(i) for i in ids], "X/Y/Z/<id>.mp3"


def artists(root: Path, ids: list[str]) -> tuple[list[str], str]:
    path = find_file(root, ["unique_tracks.txt"])
    if path is None:
        return [""] * len(ids), "unknown"
    wanted, by_id = set(ids), {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.rstrip("\r\n").split("<SEP>")
            if len(fields) >= 3 and fields[0] in wanted:
                by_id[fields[0]] = fields[2]
    return [by_id.get(i, "") for i in ids], path.relative_to(root).as_posix()


def _lee(root: Path, lee_train_size: int):
    train_path = require_file(root, ["filtered_list_train.cP"], dataset="msd (lee)")
    test_path = require_file(root, ["filtered_list_test.cP"], dataset="msd (lee)")
    vector_path = require_file(root, ["msd_id_to_tag_vector.cP"], dataset="msd (lee)")
    train_list = [_text(i) for i in load_py2_pickle(train_path)]
    test_list = [_text(i) for i in load_py2_pickle(test_path)]
    if len(train_list) <= lee_train_size:
        raise ValueError(f"{train_path}: {len(train_list)} ids, but the Lee split trains on the first "
                         f"{lee_train_size} and validates on the rest; expected more ids")
    vectors = {_text(k): v for k, v in load_py2_pickle(vector_path).items()}
    splits = ["train"] * lee_train_size + ["valid"] * (len(train_list) - lee_train_size) + ["test"] * len(test_list)
    ids = train_list + test_list
    labelled = [i in vectors for i in ids]
    unlabelled = [i for i, ok in zip(ids, labelled) if not ok]
    if unlabelled:
        print(f"msd: {len(unlabelled)} ids have no tag vector in {vector_path} and are skipped (e.g. {unlabelled[0]})")
    ids = [i for i, ok in zip(ids, labelled) if ok]
    splits = [s for s, ok in zip(splits, labelled) if ok]
    labels = [tag_vector(vectors[i], f"{vector_path}[{i}]") for i in ids]
    return ids, splits, labels, {"unlabelled": len(unlabelled)}


def _musicnn(root: Path):
    ids, splits, labels = [], [], []
    for split, prefix in (("train", "train"), ("valid", "val"), ("test", "test")):
        gt_path = require_file(root, [f"{prefix}_gt_msd.tsv"], INDEX_DIRS, dataset="msd (musicnn)")
        split_ids, split_labels = read_vector_tsv(gt_path, N_TAGS)
        ids += split_ids
        splits += [split] * len(split_ids)
        labels += list(split_labels)
    return ids, splits, labels, {}


def detect_convention(root: Path) -> str:
    if find_file(root, ["filtered_list_train.cP"]) is not None:
        return "lee"
    if find_file(root, ["train_gt_msd.tsv"], INDEX_DIRS) is not None:
        return "musicnn"
    raise FileNotFoundError(f"msd: found neither filtered_list_train.cP nor train_gt_msd.tsv under {root}; "
                            f"expected {EXPECTED}")


def load_msd(cfg: DataConfig, *, lee_train_size: int = LEE_TRAIN_SIZE) -> Collection:
    """The MSD as a Collection; see the module docstring for layouts and conventions.

    ``lee_train_size`` is only for tests and trimmed copies of the split lists.
    """
    root = require_root(cfg.data_root, "msd", EXPECTED)
    convention = cfg.split_convention or detect_convention(root)
    if convention not in CONVENTIONS:
        raise ValueError(f"msd: unknown split_convention {convention!r} — use one of {', '.join(CONVENTIONS)}")
    if convention == "lee":
        ids, splits, labels, details = _lee(root, lee_train_size)
    else:
        ids, splits, labels, details = _musicnn(root)
    tags, tags_source = tag_names(root)
    paths, path_source = audio_paths(root, ids)
    track_artists, artist_source = artists(root, ids)
    tracks = pd.DataFrame({"split": splits, "artist": track_artists, "path": paths},
                          index=pd.Index(ids, name="track_id"))
    labels = np.stack(labels) if labels else np.zeros((0, len(tags)), np.float32)
    audio_root = resolve_audio_root(root, cfg.audio_root, AUDIO_DIRS,
                                    markers=[p.split("/")[0] for p in paths[:20]])
    description = {"source": "Million Song Dataset", "convention": convention, "data_root": str(root),
                   "tag_names": tags_source, "paths": path_source, "artist_source": artist_source, **details}
    return collection_from_files("msd", tracks, tags, labels, audio_root=audio_root, description=description,
                                 expected_audio="X/Y/Z/<MSD id>.mp3 or a mapping, see study/data/msd.py")
