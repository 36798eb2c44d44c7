"""One table of tracks and tags, whatever the source (embedded corpus, MTT, MSD, Jamendo, catalogue)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from study.metrics import POSITIVE_THRESHOLD

SPLITS = ("train", "valid", "test")
EXCLUDED_COLUMNS = ("track_id", "split", "path", "reason", "detail")  # a clip left out: reason missing | undecodable
# description entries that say where the files are, not what they are: left out of the manifest hash
LOCATION_KEYS = ("data_root", "audio_root", "table", "missing")


@dataclass
class Collection:
    """Tracks, their labels by tag name, and how to get each track's audio.

    ``tracks`` is indexed by ``track_id`` (str) with columns ``split`` (train/valid/test),
    ``artist`` (str, '' when unknown) and ``path`` (str, '' for generated audio); further columns
    are free.  ``labels[i, j]`` is the value of ``tags[j]`` for the i-th row of ``tracks``.
    ``loader(track_id, row)`` returns 16 kHz mono float32 audio; it must be picklable so the cache
    can call it from worker processes.
    """

    name: str
    tracks: pd.DataFrame
    tags: list[str]
    labels: np.ndarray
    loader: Callable[[str, pd.Series], np.ndarray]
    regression_tags: frozenset[str] = frozenset()
    description: dict = field(default_factory=dict)
    train_order: list[str] | None = None  # fixed order of train ids; the first N form the nested subsets
    excluded: tuple[dict, ...] = ()  # clips left out and why, one dict of EXCLUDED_COLUMNS each
    source_hash: str = ""  # the manifest hash of the data as read, kept by copies that leave clips out

    def __post_init__(self) -> None:
        if len(self.tracks) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.tracks)} tracks but {len(self.labels)} label rows")
        if self.labels.ndim != 2 or self.labels.shape[1] != len(self.tags):
            raise ValueError(f"{self.name}: labels of shape {self.labels.shape} do not match {len(self.tags)} tags")
        unknown = set(self.tracks["split"].unique()) - set(SPLITS)
        if unknown:
            raise ValueError(f"{self.name}: unknown split names {sorted(unknown)}; expected {SPLITS}")
        self.labels = np.asarray(self.labels, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def is_regression(self) -> np.ndarray:
        """Boolean mask over ``tags``: True for tags scored with √MSE."""
        return np.array([t in self.regression_tags for t in self.tags], dtype=bool)

    def tags_of(self, track_id: str) -> list[str]:
        """The classification tags a track carries (label >= POSITIVE_THRESHOLD)."""
        labels = self.label_rows([track_id])[0]
        return [tag for tag, value, regression in zip(self.tags, labels, self.is_regression)
                if not regression and value >= POSITIVE_THRESHOLD]

    def load_audio(self, track_id: str) -> np.ndarray:
        return self.loader(track_id, self.tracks.loc[track_id])

    def ids(self, split: str, train_size: int = 0) -> list[str]:
        """Track ids of a split; for train, the first ``train_size`` of the fixed nested order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        ids = list(self.tracks.index[self.tracks["split"] == split])
        if split == "train":
            order = self.train_order or ids
            if train_size:
                if train_size > len(order):
                    raise ValueError(f"{self.name}: train_size {train_size} exceeds the {len(order)} training tracks")
                order = order[:train_size]
            return list(order)
        return ids

    def label_rows(self, track_ids: list[str]) -> np.ndarray:
        positions = self.tracks.index.get_indexer(track_ids)
        if (positions < 0).any():
            missing = [t for t, p in zip(track_ids, positions) if p < 0][:5]
            raise KeyError(f"{self.name}: unknown track ids {missing}")
        return self.labels[positions]

    def exclude(self, details: dict[str, str], *, reason: str) -> "Collection":
        """A copy without these tracks (track id -> what went wrong), each recorded in ``excluded`` with ``reason``."""
        gone = self.tracks.loc[[t for t in self.tracks.index if t in details]]
        records = tuple({"track_id": track_id, "split": row["split"], "path": str(row.get("path", "")),
                         "reason": reason, "detail": details[track_id]} for track_id, row in gone.iterrows())
        keep = ~self.tracks.index.isin(list(details))
        order = None if self.train_order is None else [t for t in self.train_order if t not in details]
        return Collection(self.name, self.tracks[keep], list(self.tags), self.labels[keep], self.loader,
                          self.regression_tags, dict(self.description), order, self.excluded + records,
                          self.manifest_hash())

    def excluded_table(self) -> pd.DataFrame:
        """The clips this collection leaves out, one row each: track_id, split, path, reason, detail."""
        return pd.DataFrame(list(self.excluded), columns=list(EXCLUDED_COLUMNS))

    def counts(self) -> dict[str, int]:
        return {s: int((self.tracks["split"] == s).sum()) for s in SPLITS}

    def manifest_hash(self) -> str:
        """Hash of ids, splits, tags, labels and the description (generator version, clip length, roots).

        Two runs on equal data share it, and the audio cache is keyed by it, so audio made by another
        generator version or clip length never comes back from a stale cache.  It identifies the data
        as read, before any audio is decoded: a copy that leaves out undecodable clips
        (:meth:`exclude`) keeps it, so whether a stored run used these data is known without decoding.
        """
        if self.source_hash:
            return self.source_hash
        h = hashlib.sha1()
        h.update(json.dumps([self.name, self.tags, sorted(self.regression_tags)]).encode())
        # where the files live is not what they are: moved data keep their hash (and their cache)
        described = {k: v for k, v in self.description.items() if k not in LOCATION_KEYS}
        h.update(json.dumps(described, sort_keys=True, default=str).encode())
        h.update("\n".join(f"{i}\t{s}" for i, s in zip(self.tracks.index, self.tracks["split"])).encode())
        h.update(np.ascontiguousarray(self.labels).tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> str:
        c = self.counts()
        return (f"{self.name}: {len(self)} tracks (train {c['train']}, valid {c['valid']}, test {c['test']}), "
                f"{len(self.tags)} tags ({len(self.regression_tags)} regression)")


def tag_table(collection: Collection) -> pd.DataFrame:
    """One row per tag: its kind, positives (classification tags), mean label over all clips and per split.

    Classification tags first, most common first (the popular tags, then the long tail of rare
    ones, as in the paper's §3), then the regression tags by mean value.
    """
    split_of = collection.tracks["split"].to_numpy()
    regression = collection.is_regression
    table = pd.DataFrame({"tag": collection.tags, "kind": np.where(regression, "regression", "classification")})
    table["positives"] = np.where(regression, -1, (collection.labels >= POSITIVE_THRESHOLD).sum(axis=0))
    table["mean_label"] = collection.labels.mean(axis=0) if len(collection) else np.nan
    for split in SPLITS:
        rows = collection.labels[split_of == split]
        table[f"mean_{split}"] = rows.mean(axis=0) if len(rows) else np.nan
    table = table.sort_values(["kind", "positives", "mean_label"], ascending=[True, False, False], kind="stable")
    table["positives"] = table["positives"].astype(object).where(table["kind"] == "classification", "")
    return table.reset_index(drop=True)
