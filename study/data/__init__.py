"""Datasets: one reader per source, each returning a :class:`Collection`."""
from __future__ import annotations

from study.config import DataConfig
from study.data.catalogue import load_catalogue
from study.data.collection import SPLITS, Collection, tag_table
from study.data.corpus import load_corpus
from study.data.jamendo import load_jamendo
from study.data.msd import load_msd
from study.data.mtt import load_mtt

# dataset name (DataConfig.dataset) -> reader(cfg: DataConfig) -> Collection
READERS = {
    "corpus": load_corpus,
    "mtt": load_mtt,
    "msd": load_msd,
    "jamendo": load_jamendo,
    "catalogue": load_catalogue,
}


def load_collection(cfg: DataConfig) -> Collection:
    """Build the collection a run asks for, by dataset name (reads label files; decodes no audio)."""
    if cfg.dataset not in READERS:
        raise ValueError(f"unknown dataset {cfg.dataset!r} — use one of {', '.join(sorted(READERS))}")
    collection = READERS[cfg.dataset](cfg)
    print(collection.summary())
    return collection


__all__ = ["SPLITS", "Collection", "READERS", "load_collection", "tag_table"]
