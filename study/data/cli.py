"""``study corpus`` (what a collection holds) and ``study cache`` (decode it once)."""
from __future__ import annotations

import argparse
from dataclasses import fields

import numpy as np
import pandas as pd

from study.config import AudioConfig, DataConfig, RunConfig
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


def _add_config_arguments(parser: argparse.ArgumentParser, sections: tuple[type, ...]) -> None:
    """``--preset`` plus one ``--<field>`` per config field, by its exact name."""
    parser.add_argument("--preset", default="default", help="smoke | default | paper (default: default)")
    for section in sections:
        for fld in fields(section):
            parser.add_argument(f"--{fld.name}", default=None, metavar=str(fld.type).upper(),
                                help=f"{section.__name__}.{fld.name} (preset value if not given)")


def _config(args: argparse.Namespace, sections: tuple[type, ...]) -> RunConfig:
    names = [fld.name for section in sections for fld in fields(section)]
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return RunConfig.from_flat(args.preset, **overrides)


def _corpus_command(args: argparse.Namespace) -> int:
    collection = load_collection(_config(args, (DataConfig,)).data)  # prints the summary
    table = tag_table(collection)
    if args.csv:
        print(table.to_csv(index=False, float_format="%.4f"), end="")
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _cache_command(args: argparse.Namespace) -> int:
    cfg = _config(args, (DataConfig, AudioConfig))
    collection = load_collection(cfg.data)
    cache, _ = ensure_cache(collection, cfg, workers=args.workers, dtype=args.dtype)
    print(cache.summary())
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser("corpus", help="print a collection's split counts and tag table")
    _add_config_arguments(corpus, (DataConfig,))
    corpus.add_argument("--csv", action="store_true", help="print the tag table as CSV")
    corpus.set_defaults(func=_corpus_command)

    cache = subparsers.add_parser("cache", help="decode a collection's audio once into cache_dir (resumable)")
    _add_config_arguments(cache, (DataConfig, AudioConfig))
    cache.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count, at most 8)")
    cache.add_argument("--dtype", choices=DTYPES, default=None, help="stored sample type; float16 halves the disk")
    cache.set_defaults(func=_cache_command)
