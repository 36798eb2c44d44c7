"""A tagger = input stage + front-end + back-end; the builders of the paper's two models.

Every tagger takes raw 16 kHz audio (batch, samples) and returns logits (batch, n_tags); the
sigmoid lives in the loss and in prediction.  Spectrogram models compute the log-mel inside
(:class:`~study.models.blocks.LogMelInput`), so the data pipeline is the same for all models.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from study.audio import check_waveform
from study.config import AudioConfig, ModelConfig
from study.models.backend import Backend
from study.models.blocks import DenseHead, LogMelInput, TimeOp, init_tf_style, smallest_input, trace_time
from study.models.frontends import SpectrogramFrontend, WaveformFrontend


class Tagger(nn.Module):
    """Front-end + back-end on raw audio.

    ``min_samples``: the shortest accepted input; ``fixed_samples``: the only accepted length
    for baselines that flatten a fixed-size map (None for the paper's variable-length models).
    Every part declares ``time_ops``; the back-end offers ``embed(features)`` and
    ``classify(embedding)``; an input stage (e.g. :class:`LogMelInput`) offers ``fit(waveforms)``.
    """

    def __init__(
        self, *, name: str, frontend: nn.Module, backend: nn.Module, input_stage: nn.Module | None = None,
        fixed_samples: int | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.input_stage = input_stage
        self.frontend = frontend
        self.backend = backend
        self.fixed_samples = fixed_samples
        self.min_samples = fixed_samples if fixed_samples is not None else smallest_input(self.time_ops)
        init_tf_style(self)

    @property
    def time_ops(self) -> tuple[TimeOp, ...]:
        ops = self.input_stage.time_ops if self.input_stage is not None else ()
        return ops + self.frontend.time_ops + self.backend.time_ops

    def _features(self, waveform: torch.Tensor) -> torch.Tensor:
        check_waveform(waveform, self.min_samples, what=f"{self.name} model input")
        if self.fixed_samples is not None and waveform.shape[1] != self.fixed_samples:
            raise ValueError(
                f"{self.name} model input: {waveform.shape[1]} samples; this baseline takes exactly "
                f"{self.fixed_samples} samples (window or crop the audio to that length)"
            )
        x = self.input_stage(waveform) if self.input_stage is not None else waveform
        return self.frontend(x)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) float32 16 kHz audio -> logits (batch, n_tags)."""
        return self.backend.classify(self.backend.embed(self._features(waveform)))

    def embed(self, waveform: torch.Tensor) -> torch.Tensor:
        """Penultimate features (batch, D): for the paper's models the dense layer's output."""
        return self.backend.embed(self._features(waveform))

    def fit_input_stats(self, waveforms: Iterable[torch.Tensor]) -> None:
        """Set the scalar log-mel mean/std from training audio; a no-op for waveform models."""
        if self.input_stage is not None:
            self.input_stage.fit(waveforms)


def build_waveform(model_cfg: ModelConfig, *, n_tags: int, audio_cfg: AudioConfig = AudioConfig()) -> Tagger:
    """§4 waveform model: sample-level front-end (7 or 9 layers) + shared back-end."""
    frontend = WaveformFrontend(layers=model_cfg.waveform_layers, multiplier=model_cfg.frontend_multiplier)
    backend = Backend(
        in_features=frontend.out_features, n_tags=n_tags, filters=model_cfg.backend_filters,
        dense_units=model_cfg.dense_units, dropout=model_cfg.dropout,
    )
    return Tagger(name="waveform", frontend=frontend, backend=backend)


def build_spectrogram(model_cfg: ModelConfig, *, n_tags: int, audio_cfg: AudioConfig = AudioConfig()) -> Tagger:
    """§4 spectrogram model: standardised log-mel, musically motivated front-end + shared back-end."""
    frontend = SpectrogramFrontend(n_mels=audio_cfg.n_mels, multiplier=model_cfg.frontend_multiplier)
    backend = Backend(
        in_features=frontend.out_features, n_tags=n_tags, filters=model_cfg.backend_filters,
        dense_units=model_cfg.dense_units, dropout=model_cfg.dropout,
    )
    return Tagger(name="spectrogram", frontend=frontend, backend=backend, input_stage=LogMelInput(audio_cfg))


def describe(model: Tagger, n_samples: int | None = None, sample_rate: int = 16000) -> str:
    """Time steps and receptive field after each time operation, then parameters per block."""
    n_samples = n_samples or model.fixed_samples or 48_000
    lines = [f"{model.name}: {n_samples} samples in; min_samples {model.min_samples}; fixed_samples {model.fixed_samples}",
             f"  {'operation':<58} {'steps':>7} {'receptive field':>22}"]
    for name, steps, field in trace_time(model.time_ops, n_samples):
        lines.append(f"  {name:<58} {steps:>7} {field:>12} samples {1000 * field / sample_rate:>7.1f} ms")
    lines.append(f"  {'block':<58} {'parameters':>12}")
    for name, count in param_breakdown(model):
        lines.append(f"  {name:<58} {count:>12,}")
    lines.append(f"  {'total':<58} {count_params(model):>12,}")
    return "\n".join(lines)


def count_params(model: nn.Module) -> int:
    """Trainable variables as TF counts them: kernels, biases, BN gamma/beta (no running stats)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def param_breakdown(model: nn.Module) -> list[tuple[str, int]]:
    """Parameters per block: each child of the front-end and back-end, stacks and dense heads expanded one level."""
    rows: list[tuple[str, int]] = []
    for part_name, part in model.named_children():
        for child_name, child in part.named_children():
            expand = isinstance(child, (nn.ModuleList, nn.Sequential, DenseHead))
            children = list(child.named_children()) if expand else []
            named = [(f"{part_name}.{child_name}.{n}", c) for n, c in children] or [(f"{part_name}.{child_name}", child)]
            for name, block in named:
                count = count_params(block)
                if count:
                    rows.append((f"{name} {_summary(block)}".rstrip()[:58], count))
    return rows


def _summary(block: nn.Module) -> str:
    """The first weight layer of a block, e.g. '[Conv1d 64->128, kernel (3,)]'."""
    for layer in block.modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            return f"[{type(layer).__name__} {layer.in_channels}->{layer.out_channels}, kernel {layer.kernel_size}]"
        if isinstance(layer, nn.Linear):
            return f"[Linear {layer.in_features}->{layer.out_features}]"
        if isinstance(layer, nn.BatchNorm1d):
            return f"[BatchNorm {layer.num_features}]"
    return ""
