"""The musicnn package's published taggers running in the study's PyTorch code, without TensorFlow.

``MTT_musicnn``, ``MSD_musicnn``, ``MTT_vgg`` and ``MSD_vgg`` are TF1 checkpoints shipped in the
`musicnn` wheel (ISC licence, by the paper's first author).  Only the wheel's files are used:
its folder is found with ``importlib.util.find_spec`` (none of its code is imported), the
checkpoints are read by :mod:`study.tfbundle`, the tag lists are parsed out of its
``configuration.py`` with ``ast``, and the networks are :mod:`study.models.musicnn`.

musicnn's prediction protocol, reproduced exactly by :func:`taggram`: the log-mel of the whole
song (16 kHz, n_fft 512, hop 256, 96 bands, log10(1 + 10000 mel) of the float16-stored mel,
computed in float32 as the package did under NumPy 1), cut into consecutive 187-frame (3 s)
patches with a trailing partial patch dropped; one sigmoid row per patch, and the song's tags are
the mean over patches.
"""
from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from study.config import AudioConfig, EvalConfig, ModelConfig, RunConfig, TrainConfig
from study.device import keep_freed_memory
from study.models.musicnn import PATCH_FRAMES, build_musicnn, build_musicnn_vgg, load_tf_variables
from study.tfbundle import TensorBundle

# --no-deps: the wheel pins numpy < 1.17 and TensorFlow, which cannot install on current Pythons and are not used
INSTALL_HINT = "install its weights with `pip install --no-deps musicnn` (no TensorFlow needed)"
PATCH_SECONDS = 3.0  # musicnn's input_length; PATCH_FRAMES = 187 frames


@dataclass(frozen=True)
class PretrainedSpec:
    """One published model: its folder in the wheel, our registry name, its tag list and training set."""

    folder: str
    model: str  # study.models registry name
    labels: str  # the list's name in musicnn/configuration.py
    dataset: str  # study DataConfig.dataset it was trained on


PRETRAINED = {
    "MTT_musicnn": PretrainedSpec("MTT_musicnn", "musicnn", "MTT_LABELS", "mtt"),
    "MSD_musicnn": PretrainedSpec("MSD_musicnn", "musicnn", "MSD_LABELS", "msd"),
    "MTT_vgg": PretrainedSpec("MTT_vgg", "musicnn_vgg", "MTT_LABELS", "mtt"),
    "MSD_vgg": PretrainedSpec("MSD_vgg", "musicnn_vgg", "MSD_LABELS", "msd"),
}
BUILDERS = {"musicnn": build_musicnn, "musicnn_vgg": build_musicnn_vgg}
# musicnn/models.py define_model: both published sizes use a 64-filter mid-end and a 200-unit back-end
PUBLISHED_MODEL = {"frontend_multiplier": 1.0, "backend_filters": 64, "dense_units": 200, "dropout": 0.5}


class PretrainedNotInstalled(FileNotFoundError):
    """The optional `musicnn` extra (the weights) is missing; the message says how to install it."""


def musicnn_folder() -> Path:
    """The installed musicnn package's folder, found without importing (or running) any of its code."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedNotInstalled(f"the pretrained musicnn models need the optional package musicnn — {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def spec_of(name: str) -> PretrainedSpec:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r} — use one of {', '.join(PRETRAINED)}")
    return PRETRAINED[name]


def read_labels(configuration: Path, list_name: str) -> list[str]:
    """A tag list assigned in musicnn/configuration.py (``MTT_LABELS = [...]``), read with ast, not imported."""
    tree = ast.parse(configuration.read_text(), filename=str(configuration))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == list_name for t in node.targets):
            labels = ast.literal_eval(node.value)
            if isinstance(labels, list) and all(isinstance(tag, str) for tag in labels):
                return labels
    raise ValueError(f"{configuration}: no list of strings assigned to {list_name}")


def reported_metrics(folder: Path) -> dict[str, Any]:
    """The test figures the authors stored in ``experiment.result``: ROC-AUC then PR-AUC, in that order."""
    path = folder / "experiment.result"
    if not path.is_file():
        return {}
    text = path.read_text()
    values = [float(v) for v in re.findall(r"AUC:\s*([0-9.]+)", text)]
    record: dict[str, Any] = {"text": text.strip()}
    if len(values) >= 2:
        record.update(roc_auc=values[0], pr_auc=values[1])
    return record


def run_config(name: str) -> RunConfig:
    """The RunConfig that describes a pretrained model: its architecture, data set and 3 s patches."""
    spec = spec_of(name)
    return RunConfig(
        name=f"pretrained_{name}", audio=AudioConfig(), model=ModelConfig(model=spec.model, **PUBLISHED_MODEL),
        train=TrainConfig(patch_seconds=PATCH_SECONDS),
        eval=EvalConfig(eval_patch_seconds=PATCH_SECONDS, eval_hop_seconds=PATCH_SECONDS),
    ).with_overrides(dataset=spec.dataset)


def load_pretrained(name: str, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model in eval mode on ``device``, meta) with meta shaped like a checkpoint's (study.checkpoint.load_tagger)."""
    spec = spec_of(name)
    package = musicnn_folder()
    folder = package / spec.folder
    if not (folder / ".index").is_file():
        raise PretrainedNotInstalled(f"{folder}: the musicnn package has no {name} checkpoint — {INSTALL_HINT}")
    tags = read_labels(package / "configuration.py", spec.labels)
    cfg = run_config(name)
    model = BUILDERS[spec.model](cfg.model, n_tags=len(tags), audio_cfg=cfg.audio)
    load_tf_variables(model, TensorBundle(folder).read_all(), source=str(folder))
    model.to(torch.device(device)).eval()
    meta = {
        "config": cfg.to_dict(), "tags": tags, "regression_tags": [], "thresholds": None,
        "patch_seconds": PATCH_SECONDS, "hop_seconds": PATCH_SECONDS, "pretrained": name,
        "source": str(folder), "reported": reported_metrics(folder), "epoch": None, "history": [],
        "window_scores": window_scores,  # study tag: windows cut from the whole clip's log-mel, as musicnn does
    }
    return model, meta


# ---- musicnn's prediction protocol -----------------------------------------------------------------
@torch.inference_mode()
def taggram(model: torch.nn.Module, audio: np.ndarray | torch.Tensor, *, patch_frames: int = PATCH_FRAMES,
            hop_frames: int | None = None, batch_size: int = 32, features: bool = False):
    """Per-patch sigmoid scores of one clip, (n_patches, n_tags), as musicnn's extractor computes them.

    The log-mel is taken over the whole clip, then cut into ``patch_frames`` patches every
    ``hop_frames`` (default: no overlap), a trailing partial patch dropped.  A clip shorter than
    one patch is zero-padded to one (musicnn itself refuses it).  With ``features`` also returns the
    penultimate features (n_patches, D): musicnn's 200-unit layer, the VGG's flattened pool5.
    """
    keep_freed_memory()
    device = next(model.parameters()).device
    waveform = torch.as_tensor(np.asarray(audio, dtype=np.float32)).to(device).reshape(-1)
    shortest = (patch_frames - 1) * model.input_stage.hop_length  # samples giving patch_frames centred frames
    if len(waveform) < shortest:
        waveform = torch.nn.functional.pad(waveform, (0, shortest - len(waveform)))
    was_training = model.training
    model.eval()  # batch norm with the stored statistics, no dropout
    try:
        logmel = model.input_stage(waveform[None])[0]  # (frames, n_mels)
        patches = logmel.unfold(0, patch_frames, hop_frames or patch_frames).transpose(1, 2)  # (n_patches, patch_frames, n_mels)
        scores, embeddings = [], []
        for first in range(0, len(patches), batch_size):
            embedding = model.backend.embed(model.frontend(patches[first:first + batch_size]))  # (batch, D)
            embeddings.append(embedding.float().cpu())
            scores.append(torch.sigmoid(model.backend.classify(embedding).float()).cpu())  # (batch, n_tags)
    finally:
        model.train(was_training)
    gram = torch.cat(scores).numpy()
    return (gram, torch.cat(embeddings).numpy()) if features else gram


def window_scores(model: torch.nn.Module, audio: np.ndarray, *, patch_samples: int, hop_samples: int,
                  batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """study tag's windows in musicnn's way: (scores (n_windows, n_tags), window starts in seconds).

    Lengths convert to frames as musicnn's extractor does (librosa.time_to_frames, +1 for the
    patch): 3 s -> 187 frames; a hop equal to the patch steps by whole patches.
    """
    stage = model.input_stage

    def frames(samples: int) -> int:
        return (samples - stage.n_fft // 2) // stage.hop_length

    patch_frames = frames(patch_samples) + 1
    hop_frames = patch_frames if hop_samples == patch_samples else max(1, frames(hop_samples))
    scores = taggram(model, audio, patch_frames=patch_frames, hop_frames=hop_frames, batch_size=batch_size)
    return scores, np.arange(len(scores)) * hop_frames * stage.hop_length / stage.sample_rate


def song_scores(model: torch.nn.Module, audio: np.ndarray | torch.Tensor, **options: Any) -> np.ndarray:
    """A song's tag probabilities, (n_tags,): the mean of its taggram (musicnn's top_tags)."""
    return taggram(model, audio, **options).mean(axis=0)
