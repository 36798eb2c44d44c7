"""Networks of the study: one registry name -> one builder (§4 and the baselines of Tables 2-3).

``build_model(ModelConfig, n_tags=..., audio_cfg=...)`` is the only way the rest of the study
makes a model; ``study models`` prints our parameter counts beside the paper's (Tables 2-3).
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from typing import Any

import torch

from study import paper
from study.config import AudioConfig, ModelConfig
from study.models.baselines import build_dieleman, build_samplecnn, build_timbre_cnn, build_vgg
from study.models.musicnn import build_musicnn, build_musicnn_vgg
from study.models.tagger import Tagger, build_spectrogram, build_waveform, count_params, describe, param_breakdown

Builder = Callable[..., Tagger]  # (ModelConfig, *, n_tags, audio_cfg) -> Tagger

MODELS: dict[str, Builder] = {
    "waveform": build_waveform,  # §4 sample-level front-end + shared back-end
    "spectrogram": build_spectrogram,  # §4 musically motivated front-end + shared back-end
    "samplecnn": build_samplecnn,  # Table 2 baseline (Lee et al. 2017)
    "dieleman": build_dieleman,  # Table 2 baseline (Dieleman & Schrauwen 2014, public log-mel version)
    "vgg": build_vgg,  # Table 3 baseline (Choi et al. 2016, the paper's 450k reproduction)
    "timbre_cnn": build_timbre_cnn,  # Table 3 baseline (Pons et al. 2017, public version)
    "musicnn": build_musicnn,  # issue 7: musicnn (Pons & Serra 2019), runs the package's MTT/MSD weights
    "musicnn_vgg": build_musicnn_vgg,  # issue 7: musicnn's VGG, 128 filters per layer
}


def build_model(model_cfg: ModelConfig, *, n_tags: int, audio_cfg: AudioConfig = AudioConfig()) -> Tagger:
    """The network named by ``model_cfg.model``, with ``n_tags`` outputs (logits)."""
    if model_cfg.model not in MODELS:
        raise ValueError(f"unknown model {model_cfg.model!r} — use one of {', '.join(MODELS)}")
    if n_tags < 1:
        raise ValueError(f"n_tags must be at least 1, got {n_tags}")
    return MODELS[model_cfg.model](model_cfg, n_tags=n_tags, audio_cfg=audio_cfg)


# ---- parameter counts against the paper ---------------------------------------------------------
def row_model(row: dict[str, Any], *, device: str | torch.device = "meta") -> Tagger | None:
    """The model whose count a paper row's ``params`` is compared with (None if we build none).

    On the 'meta' device by default: shapes and counts without allocating or initialising weights.
    """
    if row["params_config"] is None:
        return None
    with torch.device(device):
        return build_model(ModelConfig(**row["params_config"]), n_tags=row["n_tags"],
                           audio_cfg=AudioConfig(**row["params_audio"]))


def count_table(*tables: Any) -> list[dict[str, Any]]:
    """One dict per row with a printed count: table, row, params (ours or None), paper_params, note."""
    out = []
    for row in paper.rows(*(tables or (2, 3))):
        if row["params"] is None:
            continue
        model = row_model(row)
        out.append({"table": row["table"], "row": row["row"], "params": None if model is None else count_params(model),
                    "paper_params": row["params"], "note": row["note"]})
    return out


def _print_counts(args: argparse.Namespace) -> int:
    tables = tuple(args.table) if args.table else (2, 3)
    rows = count_table(*tables)
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["table", "row", "params", "paper_params", "note"])
        for row in rows:
            writer.writerow([row["table"], row["row"], "" if row["params"] is None else row["params"], row["paper_params"], row["note"]])
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
    parser.add_argument("--describe", choices=sorted(MODELS), help="print one model's time steps, receptive field and blocks")
    parser.add_argument("--samples", type=int, default=None, help="input length for --describe (default 48,000)")
    parser.add_argument("--frontend-multiplier", type=float, default=ModelConfig.frontend_multiplier)
    parser.add_argument("--backend-filters", type=int, default=ModelConfig.backend_filters)
    parser.add_argument("--dense-units", type=int, default=ModelConfig.dense_units)
    parser.add_argument("--waveform-layers", type=int, default=ModelConfig.waveform_layers)
    parser.add_argument("--n-tags", type=int, default=50)
    parser.set_defaults(func=lambda args: _describe(args) if args.describe else _print_counts(args))


__all__ = ["MODELS", "Tagger", "build_model", "count_params", "param_breakdown", "describe", "count_table",
           "row_model", "register_cli"]
