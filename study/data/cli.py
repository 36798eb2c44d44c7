"""``study corpus`` (what a collection holds) and ``study cache`` (decode it once)."""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from study.config import add_config_arguments, config_from_args
from study.data import load_collection
from study.data.cache import DTYPES, ensure_cache
from study.data.collection import SPLITS, Collection


def tag_table(collection: Collection) -> pd.DataFrame:
    """One row per tag: its kind, positives (binary tags) and mean label per split.

    Binary tags are sorted by how many tracks carry them (popular tags first, the long tail of
    rare tags after, as in the paper's §3), then the regression tags.
    """
    split_of = collection.tracks["split"].to_numpy()
    table = pd.DataFrame({"tag": collection.tags,
                          "kind": np.where(collection.is_regression, "regression", "binary")})
    table["positives"] = np.where(collection.is_regression, -1, (collection.labels > 0.5).sum(axis=0))
    for split in SPLITS:
        rows = collection.labels[split_of == split]
        table[f"mean_{split}"] = rows.mean(axis=0) if len(rows) else np.nan
    table = table.sort_values(["kind", "positives"], ascending=[True, False], kind="stable")
    table["positives"] = table["positives"].astype(object).where(table["kind"] == "binary", "")
    return table.reset_index(drop=True)


def _corpus_command(args: argparse.Namespace) -> int:
    collection = load_collection(config_from_args(args).data)  # prints the summary
    table = tag_table(collection)
    if args.csv:
        print(table.to_csv(index=False, float_format="%.4f"), end="")
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _cache_command(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    collection = load_collection(cfg.data)
    cache, _ = ensure_cache(collection, cfg, workers=args.workers, dtype=args.dtype)
    print(cache.summary())
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser("corpus", help="print a collection's split counts and tag table")
    add_config_arguments(corpus, ("data",))
    corpus.add_argument("--csv", action="store_true", help="print the tag table as CSV")
    corpus.set_defaults(func=_corpus_command)

    cache = subparsers.add_parser("cache", help="decode a collection's audio once into cache_dir (resumable)")
    add_config_arguments(cache, ("data", "audio"))
    cache.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count, at most 8)")
    cache.add_argument("--dtype", choices=DTYPES, default=None, help="stored sample type; float16 halves the disk")
    cache.set_defaults(func=_cache_command)
