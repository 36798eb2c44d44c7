"""Models of the study: one registry that knows every name a config may give (§4, Tables 1-3).

``MODELS`` maps each network to its builder; ``GBT`` is Table 1's baseline of handcrafted
descriptors and trees (:mod:`study.gbt`), which is not a network.  ``MODEL_NAMES`` is every name a
config may give, and :func:`check_model_name` refuses any other before data are touched.
``build_model(ModelConfig, n_tags=..., audio_cfg=...)`` is the only way the rest of the study
makes a network; ``study models`` (:mod:`study.models.cli`) prints our parameter counts beside the
paper's (Tables 2-3).
"""
from __future__ import annotations

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
    "musicnn": build_musicnn,  # musicnn (Pons & Serra 2019): runs the package's released MTT/MSD weights
    "musicnn_vgg": build_musicnn_vgg,  # musicnn's VGG, 128 filters per layer
}
GBT = "gbt"  # Table 1's baseline: handcrafted descriptors + one gradient-boosted tree model per tag (study.gbt)
MODEL_NAMES = (*MODELS, GBT)  # every model a config may name


def check_model_name(name: str, *, network: bool = False) -> None:
    """Refuse a name the registry does not know, or (``network``) the GBT where a network is needed."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r} — use one of {', '.join(MODEL_NAMES)}")
    if network and name == GBT:
        raise ValueError(f"model {GBT!r} is Table 1's baseline of descriptors and trees, not a network — fit it with "
                         f"`study gbt` (or as a point of a grid), not `study train` or `study evaluate`")


def build_model(model_cfg: ModelConfig, *, n_tags: int, audio_cfg: AudioConfig = AudioConfig()) -> Tagger:
    """The network named by ``model_cfg.model``, with ``n_tags`` outputs (logits)."""
    check_model_name(model_cfg.model, network=True)
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


__all__ = ["GBT", "MODELS", "MODEL_NAMES", "Tagger", "build_model", "check_model_name", "count_params",
           "param_breakdown", "describe", "count_table", "row_model"]
