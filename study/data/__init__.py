"""Datasets: one reader per source, each returning a :class:`Collection`.

A reader's module is imported when its dataset is asked for (the corpus generator needs scipy's
signal tools; the MSD reader needs nothing of it), so importing ``study.data`` stays cheap for
``study tag``, which only cuts patches.
"""
from __future__ import annotations

import importlib
from typing import Callable

from study.config import DataConfig
from study.data.collection import SPLITS, Collection, tag_table

# dataset name (DataConfig.dataset) -> "module:reader", reader(cfg: DataConfig) -> Collection
READERS = {
    "corpus": "study.data.corpus:load_corpus",
    "mtt": "study.data.mtt:load_mtt",
    "msd": "study.data.msd:load_msd",
    "jamendo": "study.data.jamendo:load_jamendo",
    "catalogue": "study.data.catalogue:load_catalogue",
}


def reader(dataset: str) -> Callable[[DataConfig], Collection]:
    """The reader function of ``dataset`` (a key of READERS)."""
    if dataset not in READERS:
        raise ValueError(f"unknown dataset {dataset!r} — use one of {', '.join(sorted(READERS))}")
    module, function = READERS[dataset].split(":")
    return getattr(importlib.import_module(module), function)


def load_collection(cfg: DataConfig) -> Collection:
    """Build the collection a run asks for, by dataset name (reads label files; decodes no audio)."""
    collection = reader(cfg.dataset)(cfg)
    print(collection.summary())
    return collection


__all__ = ["SPLITS", "Collection", "READERS", "load_collection", "reader", "tag_table"]
