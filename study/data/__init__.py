"""Datasets: one reader per source, each returning a :class:`Collection`."""
from __future__ import annotations

import importlib

from study.config import DataConfig
from study.data.collection import SPLITS, Collection

# dataset name -> "module:function(cfg: DataConfig) -> Collection"
READERS = {
    "corpus": "study.data.corpus:load_corpus",
    "mtt": "study.data.mtt:load_mtt",
    "msd": "study.data.msd:load_msd",
    "jamendo": "study.data.jamendo:load_jamendo",
    "catalogue": "study.data.catalogue:load_catalogue",
}


def load_collection(cfg: DataConfig) -> Collection:
    """Build the collection a run asks for, by dataset name."""
    if cfg.dataset not in READERS:
        raise ValueError(f"unknown dataset {cfg.dataset!r} — use one of {', '.join(sorted(READERS))}")
    module_name, function = READERS[cfg.dataset].split(":")
    collection = getattr(importlib.import_module(module_name), function)(cfg)
    print(collection.summary())
    return collection


__all__ = ["SPLITS", "Collection", "READERS", "load_collection"]
