"""The tour's views (00_tour): a clip heard and seen, a released tagger's taggram, what a first layer learned.

Unlike :mod:`study.report`, which draws tables and figures from stored results only, these views
load audio, checkpoints and the released musicnn taggers.  A collection's tag table is
:func:`study.data.tag_table`.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from study.audio import LogMel
from study.checkpoint import BEST, load_tagger
from study.config import AudioConfig, RunConfig
from study.experiment import checkpoint_dir, shared_checkpoint
from study.models import build_model
from study.paths import resolve_path
from study.pretrained import PretrainedNotInstalled, load_pretrained, taggram
from study.report import choose_run
from study.results import read_json, run_path, split_config


def plot_clip(audio: np.ndarray, audio_cfg: AudioConfig, *, title: str = "") -> plt.Figure:
    """A clip's waveform above its log-mel spectrogram, as the spectrogram front-end sees it (§4)."""
    with torch.no_grad():
        logmel = LogMel(audio_cfg)(torch.as_tensor(audio, dtype=torch.float32)[None])[0].numpy()  # (frames, mels)
    seconds = len(audio) / audio_cfg.sample_rate
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True, height_ratios=(1, 2))
    top.plot(np.arange(len(audio)) / audio_cfg.sample_rate, audio, linewidth=0.3)
    top.set_ylabel("amplitude")
    top.set_title(title, fontsize=9)
    bottom.imshow(logmel.T, origin="lower", aspect="auto", extent=(0, seconds, 0, logmel.shape[1]))
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("mel band")
    figure.tight_layout()
    return figure


def plot_pretrained_taggram(audio: np.ndarray, *, name: str = "MTT_musicnn", top: int = 12,
                            title: str = "") -> plt.Figure | None:
    """A released musicnn tagger's taggram of one clip (tag scores per 3 s patch), its ``top`` tags.

    None, with the one-line install hint printed, when the optional musicnn weights are missing.
    """
    try:
        model, meta = load_pretrained(name)
    except PretrainedNotInstalled as missing:
        print(missing)
        return None
    scores = taggram(model, audio)  # (n_patches, n_tags)
    shown = np.argsort(-scores.mean(axis=0))[:top]
    hop = meta["hop_seconds"]
    figure, ax = plt.subplots(figsize=(8, 0.25 * len(shown) + 1.2))
    image = ax.imshow(scores[:, shown].T, aspect="auto", origin="upper", vmin=0, vmax=1, cmap="magma",
                      extent=(0, len(scores) * hop, len(shown) - 0.5, -0.5))
    ax.set_yticks(range(len(shown)), [meta["tags"][j] for j in shown], fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_title(title or f"{name} taggram", fontsize=9)
    figure.colorbar(image, ax=ax, label="score")
    figure.tight_layout()
    return figure


def trained_model(runs: pd.DataFrame, *, model: str, base: RunConfig, n_tags: int,
                  results_dir: str | Path = "results") -> tuple[torch.nn.Module, str]:
    """(network, label): the best checkpoint of the stored run of ``model`` trained on the most data,
    or a freshly initialised network (labelled so) when no such run or checkpoint exists.

    The checkpoint is the one the run recorded in its protocol.json (a path relative to the
    repository, :mod:`study.paths`), else the one :func:`study.experiment.checkpoint_dir` names for its
    config, else the copy kept with the results (:func:`study.experiment.shared_checkpoint`).
    """
    mine = runs[runs["model"] == model] if len(runs) else runs
    if len(mine):
        run_dir = run_path(results_dir, choose_run(mine, model=model)["run_id"])
        recorded = (read_json(run_dir, "protocol.json").get("training") or {}).get("checkpoint")
        stored_config, _ = split_config(read_json(run_dir, "config.json"))
        candidates = [resolve_path(recorded)] if recorded else []
        candidates.append(checkpoint_dir(RunConfig.from_dict(stored_config)) / BEST)
        candidates.append(shared_checkpoint(results_dir, run_dir.name))
        for path in candidates:
            if path.is_file():
                network, _ = load_tagger(path)
                return network, f"trained: {run_dir.name}"
    cfg = base.with_overrides(model=model)
    return build_model(cfg.model, n_tags=n_tags, audio_cfg=cfg.audio).eval(), "untrained (no stored run yet)"


def plot_first_layer(network: torch.nn.Module, *, label: str = "", sample_rate: int = 16000,
                     shown: int = 8) -> plt.Figure:
    """What the first layer of a front-end learned.

    Spectrogram front-end: the first timbral filters as time x mel images (Figure 2, right).
    Waveform front-end: the magnitude response of each first-layer 3-tap filter over 0..Nyquist,
    sorted by peak frequency (sample-level filters act as a learned filterbank).
    """
    convs = [m for m in network.frontend.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))]
    if not convs:
        raise ValueError(f"{type(network).__name__}: no convolution in its front-end to show")
    first = convs[0]
    weights = first.weight.detach().float().cpu().numpy()
    if isinstance(first, torch.nn.Conv2d):  # (filters, 1, frames, mels)
        count = min(shown, weights.shape[0])
        figure, axes = plt.subplots(1, count, figsize=(1.3 * count, 3), squeeze=False)
        for index, ax in enumerate(axes[0]):
            ax.imshow(weights[index, 0].T, origin="lower", aspect="auto", cmap="coolwarm")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{index}", fontsize=7)
        axes[0, 0].set_ylabel(f"{weights.shape[3]} mel bins")
        figure.suptitle(f"first timbral filters ({weights.shape[2]} frames x {weights.shape[3]} mel bins) — {label}",
                        fontsize=9)
    else:  # (filters, channels, taps)
        taps = weights.reshape(weights.shape[0], -1)
        response = np.abs(np.fft.rfft(taps, n=512, axis=1))  # (filters, 257)
        response /= response.max(axis=1, keepdims=True) + 1e-12
        order = np.argsort(response.argmax(axis=1), kind="stable")
        figure, ax = plt.subplots(figsize=(6, 3.5))
        ax.imshow(response[order].T, origin="lower", aspect="auto", extent=(0, len(order), 0, sample_rate / 2000))
        ax.set_xlabel("filter (sorted by peak frequency)")
        ax.set_ylabel("frequency (kHz)")
        ax.set_title(f"first-layer magnitude responses ({taps.shape[1]} taps) — {label}", fontsize=9)
    figure.tight_layout()
    return figure


__all__ = ["plot_clip", "plot_first_layer", "plot_pretrained_taggram", "trained_model"]
