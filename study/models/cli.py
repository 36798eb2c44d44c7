"""``study models``: our parameter counts beside the paper's (Tables 2-3), or one model's layers."""
from __future__ import annotations

import argparse
import csv
import sys
from typing import Any

import torch

from study import paper
from study.config import ModelConfig
from study.models import MODELS, build_model, count_table, describe, param_breakdown, row_model


def _print_counts(args: argparse.Namespace) -> int:
    tables = tuple(args.table) if args.table else (2, 3)
    rows = count_table(*tables)
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["table", "row", "params", "paper_params", "note"])
        for row in rows:
            writer.writerow([row["table"], row["row"], "" if row["params"] is None else row["params"],
                             row["paper_params"], row["note"]])
        return 0
    for row in rows:
        ours = "-" if row["params"] is None else f"{row['params']:,}"
        mark = "" if not row["note"] else "  (see note)"
        print(f"Table {row['table']:<4} {row['row']:<44} {ours:>12} {row['paper_params']:>7}{mark}")
        if args.arithmetic:
            model = row_model(next(r for r in paper.rows(row["table"]) if r["row"] == row["row"]))
            if model is not None:
                for name, count in param_breakdown(model):
                    print(f"    {name:<58} {count:>12,}")
            if row["note"]:
                print(f"    note: {row['note']}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    cfg = ModelConfig(model=args.describe, frontend_multiplier=args.frontend_multiplier,
                      backend_filters=args.backend_filters, dense_units=args.dense_units,
                      waveform_layers=args.waveform_layers)
    with torch.device("meta"):
        model = build_model(cfg, n_tags=args.n_tags)
    print(describe(model, args.samples))
    return 0


def register_cli(subparsers: Any) -> None:
    """``study models``: our parameter counts beside the paper's (Tables 2-3), or one model's layers."""
    parser = subparsers.add_parser("models", help="parameter counts vs the paper (Tables 2-3); per-layer description")
    parser.add_argument("--csv", action="store_true", help="print table,row,params,paper_params,note as CSV")
    parser.add_argument("--table", action="append", type=lambda t: t if t == "5.1" else int(t),
                        help="paper table to list (2, 3, 4 or 5.1 for §5.1's text); repeatable; default 2 and 3")
    parser.add_argument("--arithmetic", action="store_true", help="print each row's per-block parameter counts")
    parser.add_argument("--describe", choices=sorted(MODELS),
                        help="print one network's time steps, receptive field and blocks")
    parser.add_argument("--samples", type=int, default=None, help="input length for --describe (default 48,000)")
    parser.add_argument("--frontend-multiplier", type=float, default=ModelConfig.frontend_multiplier)
    parser.add_argument("--backend-filters", type=int, default=ModelConfig.backend_filters)
    parser.add_argument("--dense-units", type=int, default=ModelConfig.dense_units)
    parser.add_argument("--waveform-layers", type=int, default=ModelConfig.waveform_layers)
    parser.add_argument("--n-tags", type=int, default=50)
    parser.set_defaults(func=lambda args: _describe(args) if args.describe else _print_counts(args))
