"""The embedded corpus as a :class:`Collection`: track table and labels, splits and on-demand audio.

The track table and labels come from the plans alone (no audio), so a million-clip corpus is
listed in seconds; audio is rendered by the collection's loader when the cache asks for it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.config import DataConfig
from study.data.collection import Collection
from study.data.corpus import taxonomy as tx
from study.data.corpus.plan import describe, plan_clips, plan_row, tag_matrix
from study.data.corpus.render import render_clip
from study.data.splits import artist_filtered_split, nested_train_order
from study.metrics import POSITIVE_THRESHOLD

GENERATOR_VERSION = "1.0"  # bump whenever a change alters any clip's audio or tags
MIN_SIZE, MAX_SIZE = 100, 1_000_000
SAMPLE_RATE = 16000
TABLE_CHUNK = 100_000  # clips planned at once when listing a large corpus


def track_id(index: int) -> str:
    return f"clip{index:07d}"


def clip_plan(seed: int, index: int) -> dict:
    """The plan of one clip (identical to its row in any corpus table)."""
    return plan_row(plan_clips(seed, np.array([index])), 0)


def generate_clip(seed: int, index: int, seconds: float = 30.0, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
    """(audio float32 mono in [-1, 1], {tag: value}) of clip ``index`` of the corpus with ``seed``."""
    if index < 0:
        raise ValueError(f"corpus clip index must be >= 0, got {index}")
    if not seconds > 0:
        raise ValueError(f"corpus clip length must be positive, got {seconds} s")
    plans = plan_clips(seed, np.array([index]))
    labels = tag_matrix(plans)[0]
    audio = render_clip(plan_row(plans, 0), seconds, sample_rate)
    return audio, {tag: float(value) for tag, value in zip(tx.TAGS, labels)}


def corpus_table(seed: int, size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(track table without splits, labels (size, len(TAGS)) float32) for clips 0 .. size-1."""
    frames, labels = [], np.empty((size, len(tx.TAGS)), dtype=np.float32)
    for low in range(0, size, TABLE_CHUNK):
        high = min(size, low + TABLE_CHUNK)
        plans = plan_clips(seed, np.arange(low, high))
        labels[low:high] = tag_matrix(plans)
        frames.append(describe(plans))
    table = pd.concat(frames, ignore_index=True)
    table.index = pd.Index([track_id(i) for i in table["clip_index"]], name="track_id")
    return table, labels


class CorpusLoader:
    """Picklable audio source of a corpus collection: renders a clip from (seed, index, length)."""

    def __init__(self, *, seed: int, clip_seconds: float, sample_rate: int = SAMPLE_RATE) -> None:
        self.seed, self.clip_seconds, self.sample_rate = int(seed), float(clip_seconds), int(sample_rate)

    def __call__(self, track: str, row: pd.Series | None = None) -> np.ndarray:
        index = int(row["clip_index"]) if row is not None and "clip_index" in row else int(str(track).removeprefix("clip"))
        plans = plan_clips(self.seed, np.array([index]))
        return render_clip(plan_row(plans, 0), self.clip_seconds, self.sample_rate)

    def __repr__(self) -> str:
        return f"CorpusLoader(seed={self.seed}, clip_seconds={self.clip_seconds}, sample_rate={self.sample_rate})"


def load_corpus(cfg: DataConfig) -> Collection:
    """The embedded corpus of ``cfg.corpus_size`` clips: stratified artist-filtered splits, nested train order."""
    size = cfg.corpus_size
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"corpus_size {size} is outside the supported {MIN_SIZE} .. {MAX_SIZE} clips")
    if not cfg.clip_seconds > 0:
        raise ValueError(f"clip_seconds must be positive, got {cfg.clip_seconds}")
    tracks, labels = corpus_table(cfg.corpus_seed, size)
    tracks["split"] = artist_filtered_split(tracks, labels, seed=cfg.corpus_seed)
    tracks["path"] = ""
    train = (tracks["split"] == "train").to_numpy()
    order = nested_train_order(tracks.index[train], labels[train], seed=cfg.corpus_seed)
    description = {"generator": "study.data.corpus", "version": GENERATOR_VERSION, "seed": cfg.corpus_seed,
                   "size": size, "clip_seconds": cfg.clip_seconds, "sample_rate": SAMPLE_RATE,
                   "artists": int(tracks["artist"].nunique())}
    columns = ["split", "artist", "path"] + [c for c in tracks.columns if c not in ("split", "artist", "path")]
    return Collection("corpus", tracks[columns], list(tx.TAGS), labels,
                      CorpusLoader(seed=cfg.corpus_seed, clip_seconds=cfg.clip_seconds),
                      frozenset(tx.REGRESSION_TAGS), description, order)


def listen_examples(collection: Collection, tag: str, n: int = 3, *, split: str | None = None,
                    seed: int = 0) -> list[str]:
    """Track ids to play for a tag: ``n`` positives of a classification tag, or ``n`` clips from low to high
    of a regression tag."""
    if tag not in collection.tags:
        raise ValueError(f"{collection.name}: no tag {tag!r}; tags are {', '.join(collection.tags)}")
    ids = collection.tracks.index if split is None else pd.Index(collection.ids(split))
    values = collection.label_rows(list(ids))[:, collection.tags.index(tag)]
    if tag in collection.regression_tags:
        order = np.argsort(values, kind="stable")
        picks = order[np.unique(np.round(np.linspace(0, len(order) - 1, n)).astype(int))]
        return [ids[i] for i in picks]
    positives = np.nonzero(values >= POSITIVE_THRESHOLD)[0]
    picks = np.random.default_rng(seed).permutation(positives)[:n]
    return [ids[i] for i in np.sort(picks)]
