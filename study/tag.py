"""Tag your own audio: ``study tag AUDIO... --checkpoint CKPT``.

A song's tags are the mean of the patch predictions of a moving window over it, as the paper
predicts a song (§4); the per-window scores are the taggram.  Any format, rate, length or
channel count is decoded to 16 kHz mono by :func:`study.audio.load_audio`.  With ``--thresholds``
the per-tag decision thresholds stored in the checkpoint (tuned on the validation split) turn
scores into yes/no tags.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from study import checkpoint as checkpoints, pretrained as released
from study.audio import AudioError, load_audio
from study.config import RunConfig
from study.data.patches import patch_length
from study.device import resolve_device
from study.evaluate import predict_windows


def load_model(*, checkpoint: str | None = None, pretrained: str | None = None,
               device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model, meta) from a checkpoint file or a released tagger's name (exactly one of them)."""
    if (checkpoint is None) == (pretrained is None):
        raise ValueError("give exactly one of a checkpoint path or a pretrained model name")
    if pretrained is not None:  # musicnn's released MTT/MSD taggers
        return released.load_pretrained(pretrained, device)
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint file")
    return checkpoints.load_tagger(checkpoint, device)


def _model_settings(meta: dict) -> tuple[int, float]:
    """Sample rate and default evaluation patch length of the run that trained the model."""
    config = meta.get("config") or {}
    if isinstance(config, RunConfig):
        run = config
    else:
        try:
            run = RunConfig.from_dict(config)
        except (TypeError, ValueError):
            run = RunConfig()  # a foreign (e.g. pretrained) model: the paper's 16 kHz and 15 s
    return run.audio.sample_rate, run.eval.eval_patch_seconds


def tag_audio(audio: np.ndarray, model: torch.nn.Module, meta: dict, *, patch_seconds: float | None = None,
              overlap: float = 0.0, top_k: int = 10, taggram: bool = False, use_thresholds: bool = False,
              batch_size: int = 8) -> dict[str, Any]:
    """Tags of one 16 kHz mono clip: top-k by mean window score, and optionally the taggram."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be a fraction in [0, 1), got {overlap}")
    tags = list(meta["tags"])
    regression = set(meta.get("regression_tags") or ())
    thresholds = meta.get("thresholds") or {}
    if use_thresholds and all(value is None for value in thresholds.values()):
        raise ValueError("this model has no tuned decision thresholds; run without --thresholds")
    sample_rate, default_patch = _model_settings(meta)
    audio = np.asarray(audio, dtype=np.float32)
    # a model may bring its own windowing (the musicnn taggers cut the whole clip's log-mel)
    custom_windows = meta.get("window_scores")
    patch_samples = patch_length(model, patch_seconds or default_patch, sample_rate, source="--patch-seconds",
                                 exact=patch_seconds is not None,
                                 clip_samples=len(audio) if custom_windows is None else None)
    hop_samples = max(1, int(round(patch_samples * (1.0 - overlap))))
    if custom_windows is not None:
        per_window, starts = custom_windows(model, audio, patch_samples=patch_samples, hop_samples=hop_samples,
                                            batch_size=batch_size)
    else:
        per_window = predict_windows(model, audio, patch_samples=patch_samples, hop_samples=hop_samples,
                                     batch_size=batch_size)  # (n_windows, n_tags) sigmoid scores
        starts = np.arange(len(per_window)) * hop_samples / sample_rate  # seconds
    if per_window.shape[1] != len(tags):
        raise ValueError(f"the model gives {per_window.shape[1]} outputs but its metadata names {len(tags)} tags")
    clip = per_window.mean(axis=0)  # the song's prediction: mean over windows (§4)

    order = np.argsort(-clip, kind="stable")
    ranked = order[:top_k] if top_k > 0 else order
    result: dict[str, Any] = {
        "duration": len(audio) / sample_rate,
        "patch_seconds": patch_samples / sample_rate,
        "hop_seconds": hop_samples / sample_rate,
        "n_windows": len(per_window),
        "tags": [_tag_entry(tags[i], float(clip[i]), tags[i] in regression, thresholds, use_thresholds)
                 for i in ranked],
    }
    if use_thresholds:
        result["positive_tags"] = [tags[i] for i in order
                                   if tags[i] not in regression and thresholds.get(tags[i]) is not None
                                   and clip[i] >= thresholds[tags[i]]]
    if taggram:
        starts = np.asarray(starts, dtype=float)
        result["taggram"] = {"tags": tags, "start": starts.tolist(),
                             "end": (starts + patch_samples / sample_rate).tolist(),
                             "scores": np.asarray(per_window).tolist()}
    return result


def _tag_entry(tag: str, score: float, is_regression: bool, thresholds: dict, use_thresholds: bool) -> dict:
    entry: dict[str, Any] = {"tag": tag, "score": score, "kind": "regression" if is_regression else "classification"}
    if use_thresholds:
        threshold = None if is_regression else thresholds.get(tag)
        entry["threshold"] = threshold
        entry["decision"] = None if threshold is None else bool(score >= threshold)
    return entry


def tag_files(paths: Sequence[str | Path], model: torch.nn.Module, meta: dict, *, patch_seconds: float | None = None,
              overlap: float = 0.0, top_k: int = 10, taggram: bool = False, use_thresholds: bool = False,
              batch_size: int = 8) -> list[dict[str, Any]]:
    """One result per file, in order; an unreadable file gives {"path", "error"} and the rest go on."""
    sample_rate, _ = _model_settings(meta)
    out = []
    for path in paths:
        try:
            audio = load_audio(path, sample_rate)
        except AudioError as error:
            out.append({"path": str(path), "error": str(error)})
            continue
        except Exception as error:  # any decoder failure is this file's problem, not the batch's
            out.append({"path": str(path), "error": f"{path}: cannot read audio ({type(error).__name__}: {error})"})
            continue
        out.append({"path": str(path), **tag_audio(audio, model, meta, patch_seconds=patch_seconds, overlap=overlap,
                                                   top_k=top_k, taggram=taggram, use_thresholds=use_thresholds,
                                                   batch_size=batch_size)})
    return out


# ---- output formats ---------------------------------------------------------------------------
CSV_COLUMNS = ("path", "section", "start", "end", "rank", "tag", "score", "threshold", "decision")


def to_json(tagged: list[dict]) -> str:
    return json.dumps([r for r in tagged if "error" not in r], indent=2) + "\n"


def to_csv(tagged: list[dict]) -> str:
    """A tidy long table: section 'clip' holds the ranked top-k tags, section 'window' the taggram."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for result in tagged:
        if "error" in result:
            continue
        for rank, entry in enumerate(result["tags"], start=1):
            writer.writerow({"path": result["path"], "section": "clip", "start": 0.0, "end": result["duration"],
                             "rank": rank, "tag": entry["tag"], "score": entry["score"],
                             "threshold": entry.get("threshold"), "decision": entry.get("decision")})
        gram = result.get("taggram")
        if gram:
            for start, end, scores in zip(gram["start"], gram["end"], gram["scores"]):
                for tag, score in zip(gram["tags"], scores):
                    writer.writerow({"path": result["path"], "section": "window", "start": start, "end": end,
                                     "tag": tag, "score": score})
    return buffer.getvalue()


# ---- command line -----------------------------------------------------------------------------
def register_cli(subparsers) -> None:
    parser = subparsers.add_parser("tag", help="tag audio files with a trained model",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files (any format, rate, channels, length)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint written by `study train`")
    source.add_argument("--pretrained", metavar="NAME",
                        help="a released tagger: MTT_musicnn, MSD_musicnn, MTT_vgg or MSD_vgg (study.pretrained)")
    parser.add_argument("--patch-seconds", type=float, default=None,
                        help="window length (default: the model's evaluation patch, e.g. 15 s; 3 s on MTT)")
    parser.add_argument("--overlap", type=float, default=0.0,
                        help="window overlap as a fraction in [0, 1); hop = patch x (1 - overlap) (default 0)")
    parser.add_argument("--top-k", type=int, default=10, help="tags listed per file; 0 lists all (default 10)")
    parser.add_argument("--taggram", action="store_true", help="also give the scores of every window")
    parser.add_argument("--thresholds", action="store_true",
                        help="yes/no decisions with the per-tag thresholds tuned on the validation split")
    parser.add_argument("--format", choices=("json", "csv"), default="json")
    parser.add_argument("--output", default=None, help="write here instead of standard output")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    if not 0.0 <= args.overlap < 1.0:
        print(f"study tag: --overlap must be in [0, 1), got {args.overlap}", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device)
        model, meta = load_model(checkpoint=args.checkpoint, pretrained=args.pretrained, device=device)
        tagged = tag_files(args.audio, model, meta, patch_seconds=args.patch_seconds, overlap=args.overlap,
                           top_k=args.top_k, taggram=args.taggram, use_thresholds=args.thresholds,
                           batch_size=args.batch_size)
    except (ValueError, FileNotFoundError) as error:
        print(f"study tag: {error}", file=sys.stderr)
        return 2
    for result in tagged:
        if "error" in result:
            print(f"study tag: error: {result['error']}", file=sys.stderr)
    text = to_json(tagged) if args.format == "json" else to_csv(tagged)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 1 if any("error" in r for r in tagged) else 0
