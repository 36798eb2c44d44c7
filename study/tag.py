"""Tag your own audio: ``study tag AUDIO... --pretrained MTT_musicnn`` (or ``--checkpoint CKPT``).

A song's tags are the mean of the patch predictions of a moving window over it, as the paper
predicts a song (§4); the per-window scores are the taggram.  AUDIO is a file, a folder (its
audio files, recursively) or a quoted glob pattern.  Any format, rate, length or channel count
is decoded to 16 kHz mono by :func:`study.audio.load_audio`.  A silent clip, or one shorter than
a window, is tagged with a warning, since its scores mean little.  With ``--thresholds`` the
per-tag decision thresholds stored in the checkpoint (tuned on the validation split) turn scores
into yes/no tags.  A model trained on the embedded corpus knows only its synthetic music: for
real recordings use a released tagger (``--pretrained``).
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from study import checkpoint as checkpoints, pretrained as released
from study.audio import AudioError, load_audio
from study.config import RunConfig
from study.data.patches import patch_length
from study.device import resolve_device
from study.errors import UserError
from study.evaluate import predict_windows

# what a folder is searched for (libsndfile's formats, and those audioread reads through ffmpeg)
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf",
                  ".m4a", ".mp4", ".aac", ".wma", ".webm", ".mka")
SILENCE_PEAK_DB = -60.0  # a clip whose loudest sample is below this is silent: its tags mean nothing
SYNTHETIC_DATASET = "corpus"  # the embedded corpus: procedurally generated music
SYNTHETIC_WARNING = ("this model was trained on the embedded corpus of synthetic music only; its tags say little "
                     "about real recordings — for real music use --pretrained MTT_musicnn (or MSD_musicnn)")

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
        raise ValueError("this model has no tuned decision thresholds — run without --thresholds")
    sample_rate, default_patch = _model_settings(meta)
    audio = np.asarray(audio, dtype=np.float32)
    # a model may bring its own windowing (the musicnn taggers cut the whole clip's log-mel)
    custom_windows = meta.get("window_scores")
    patch_samples = patch_length(model, patch_seconds or default_patch, sample_rate, source="--patch-seconds",
                                 exact=patch_seconds is not None,
                                 clip_samples=len(audio) if custom_windows is None else None)
    window_samples = patch_length(model, patch_seconds or default_patch, sample_rate,
                                  source="--patch-seconds")  # the model's window, before a short clip shrinks it
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
    starts = np.asarray(starts, dtype=float)
    result: dict[str, Any] = {
        "duration": len(audio) / sample_rate,
        "patch_seconds": patch_samples / sample_rate,
        "hop_seconds": float(starts[1] - starts[0]) if len(starts) > 1 else None,  # the windows' step; None: one window
        "n_windows": len(per_window),
        "warnings": clip_warnings(audio, sample_rate, window_samples),
        "tags": [_tag_entry(tags[i], float(clip[i]), tags[i] in regression, thresholds, use_thresholds)
                 for i in ranked],
    }
    if use_thresholds:
        result["positive_tags"] = [tags[i] for i in order
                                   if tags[i] not in regression and thresholds.get(tags[i]) is not None
                                   and clip[i] >= thresholds[tags[i]]]
    if taggram:
        result["taggram"] = {"tags": tags, "start": starts.tolist(),
                             "end": (starts + patch_samples / sample_rate).tolist(),
                             "scores": np.asarray(per_window).tolist()}
    return result


def clip_warnings(audio: np.ndarray, sample_rate: int, window_samples: int) -> list[str]:
    """Why a clip's tags mean little: it is silent, or shorter than one window of the model."""
    found = []
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak <= 10 ** (SILENCE_PEAK_DB / 20):
        level = "digital silence" if peak == 0.0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        found.append(f"silent ({level}, below {SILENCE_PEAK_DB:.0f} dBFS): its scores mean little")
    if len(audio) < window_samples:
        found.append(f"{len(audio) / sample_rate:.2f} s is shorter than one {window_samples / sample_rate:g} s window "
                     f"of this model: its scores mean little")
    return found


def _tag_entry(tag: str, score: float, is_regression: bool, thresholds: dict, use_thresholds: bool) -> dict:
    entry: dict[str, Any] = {"tag": tag, "score": score, "kind": "regression" if is_regression else "classification"}
    if use_thresholds:
        threshold = None if is_regression else thresholds.get(tag)
        entry["threshold"] = threshold
        entry["decision"] = None if threshold is None else bool(score >= threshold)
    return entry


def trained_on_synthetic_music(meta: dict) -> bool:
    """Whether the model learnt from the embedded corpus only (its config's dataset), not from recordings."""
    config = meta.get("config") or {}
    data = config.data if isinstance(config, RunConfig) else config.get("data") or {}
    dataset = data.dataset if not isinstance(data, dict) else data.get("dataset")
    return dataset == SYNTHETIC_DATASET


def audio_inputs(inputs: Sequence[str | Path], *, log: Callable[[str], None] = print) -> tuple[list[Path], list[dict]]:
    """The files to tag, and an {"path", "error"} for each input that gives none.

    A file is taken as given (a missing one is reported when it is read); a folder gives its audio
    files, recursively and sorted, with a count through ``log``; a glob pattern (quoted, so that
    the shell leaves it alone, or one the shell passed on unmatched) gives its matches.
    """
    files: list[Path] = []
    problems: list[dict] = []
    for given in map(str, inputs):
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            log(f"{given}: {len(found)} audio file{'s' if len(found) != 1 else ''}")
            if not found:
                problems.append({"path": given, "error": f"{given}: no audio files in this folder or below "
                                                         f"(looked for {', '.join(AUDIO_SUFFIXES)})"})
            files += found
        elif not path.exists() and any(char in given for char in "*?["):
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                problems.append({"path": given, "error": f"{given}: no file matches this pattern"})
                continue
            more, trouble = audio_inputs(matches, log=log)
            log(f"{given}: {len(more)} file{'s' if len(more) != 1 else ''}")
            files += more
            problems += trouble
        else:
            files.append(path)
    unique = list(dict.fromkeys(files))  # a file named twice (e.g. in a folder and by name) is tagged once
    return unique, problems


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
CSV_COLUMNS = ("path", "section", "start", "end", "rank", "tag", "score", "threshold", "decision", "warnings")


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
                             "threshold": entry.get("threshold"), "decision": entry.get("decision"),
                             "warnings": "; ".join(result.get("warnings") or ())})
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
    parser.add_argument("audio", nargs="+", metavar="AUDIO",
                        help="audio files (any format, rate, channels, length), folders (searched recursively) "
                             "or quoted glob patterns")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", metavar="NAME",
                        help="a released tagger for real music: MTT_musicnn, MSD_musicnn, MTT_vgg or MSD_vgg")
    source.add_argument("--checkpoint", help="a checkpoint written by `study train` (corpus-trained models know only "
                                             "synthetic music)")
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
    def say(line: str) -> None:
        print(f"study tag: {line}", file=sys.stderr)

    if not 0.0 <= args.overlap < 1.0:
        raise UserError(f"--overlap must be a fraction in [0, 1), got {args.overlap} — e.g. --overlap 0.5 for "
                        f"half-overlapping windows")
    device = resolve_device(args.device)
    model, meta = load_model(checkpoint=args.checkpoint, pretrained=args.pretrained, device=device)
    if trained_on_synthetic_music(meta):
        say(f"warning: {SYNTHETIC_WARNING}")
    paths, problems = audio_inputs(args.audio, log=say)
    tagged = problems + tag_files(paths, model, meta, patch_seconds=args.patch_seconds, overlap=args.overlap,
                                  top_k=args.top_k, taggram=args.taggram, use_thresholds=args.thresholds,
                                  batch_size=args.batch_size)
    for result in tagged:
        if "error" in result:
            say(f"error: {result['error']}")
        for warning in result.get("warnings") or ():
            say(f"warning: {result['path']}: {warning}")
    text = to_json(tagged) if args.format == "json" else to_csv(tagged)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 1 if any("error" in r for r in tagged) else 0
