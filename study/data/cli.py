"""``study corpus`` (what a collection holds) and ``study cache`` (decode it once)."""
from __future__ import annotations

import argparse

from study.config import add_config_arguments, config_from_args
from study.data import load_collection, tag_table
from study.data.cache import DTYPES, ensure_cache


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
