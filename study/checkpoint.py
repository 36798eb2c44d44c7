"""Checkpoints: written atomically, loadable without unpickling code, and enough to resume exactly.

A run keeps two files in its checkpoint folder:

    last.pt  after every epoch: model, optimizer, gradient scaler (empty when disabled: CPU, MPS),
             epoch, early-stopping state, history and the random-number generators, so a killed
             run continues where it was
    best.pt  the epoch with the best validation metric so far, with its validation scores and,
             once training ends, the per-tag decision thresholds used by ``study tag``

Both record ``world_size``, the number of processes that trained them (torchrun).

Both are written to a temporary file in the same folder and renamed over the old one
(``os.replace``), so a crash leaves the previous complete file, never half of one.  Every
value is a tensor or a plain Python type, so ``torch.load(weights_only=True)`` reads them.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from study import models
from study.atomic import atomic_open
from study.config import RunConfig

LAST = "last.pt"
BEST = "best.pt"
# keys of a checkpoint dict that are not the model's own weights (what load_tagger returns as meta)
STATE_KEYS = ("model_state", "optimizer_state", "scaler_state", "rng_state")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, fsync, os.replace)."""
    with atomic_open(path) as stream:
        torch.save(state, stream)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain types only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint there")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None


def update_checkpoint(path: str | Path, **fields: Any) -> Path:
    """Rewrite a checkpoint with some fields replaced (atomically, like every write)."""
    state = load_checkpoint(path)
    state.update(fields)
    return save_checkpoint(path, state)


# ---- random-number generators --------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Every generator a training step may draw from, as tensors and plain types."""
    kind, key, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": kind, "key": [int(k) for k in key], "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        # this process's device only: touching every GPU would open a context on the other ranks' devices
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], np.asarray(numpy["key"], dtype=np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"][0].cpu())


# ---- a trained tagger, for `study tag` and `study evaluate` ---------------------------------------
def load_tagger(path: str | Path, device: str | torch.device = "cpu", *,
                build: Callable[..., nn.Module] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a checkpoint, in eval mode on ``device``, and everything else in it as ``meta``.

    ``meta`` holds "config" (RunConfig.to_dict()), "tags", "regression_tags", "thresholds"
    (tag -> float or None), "epoch", "best_metric", "history" and "protocol" (evaluation windows).
    ``build`` defaults to study.models.build_model; it receives (ModelConfig, n_tags=, audio_cfg=).
    """
    state = load_checkpoint(path)
    if "config" not in state or "model_state" not in state:
        raise ValueError(f"{path}: a tagger checkpoint needs 'config' and 'model_state'; found {sorted(state)}")
    build = build or models.build_model
    config = RunConfig.from_dict(state["config"])
    model = build(config.model, n_tags=len(state["tags"]), audio_cfg=config.audio)
    model.load_state_dict(state["model_state"])
    model.to(torch.device(device)).eval()
    meta = {key: value for key, value in state.items() if key not in STATE_KEYS}
    return model, meta
