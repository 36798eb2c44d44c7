"""The state-of-the-art baselines of Tables 2-3, as the paper's authors reproduced them.

All take raw audio like the paper's models; they flatten a fixed-size map, so each accepts one
input length (``fixed_samples``): 59,049 samples for SampleCNN, 3 s (187 frames) for the
spectrogram baselines, the MTT patch length of §5.2.  Layer details and counts:
docs/paper-details.md, "Baselines of Tables 2-3".
"""
from __future__ import annotations

import torch
from torch import nn

from study.config import AudioConfig, ModelConfig
from study.models.blocks import ConvReluBN, DenseHead, LogMelInput, ScalarBatchNorm, TimeOp, VerticalFilters, trace_time
from study.models.tagger import Tagger

BASELINE_SECONDS = 3  # §5.2: MTT inputs are 3 s; VGG / Timbre CNN / Dieleman flatten 187 frames


class StackFrontend(nn.Sequential):
    """A plain stack of layers that declares its effect on the time axis."""

    def __init__(self, *layers: nn.Module, time_ops: tuple[TimeOp, ...] = ()) -> None:
        super().__init__(*layers)
        self._time_ops = time_ops

    @property
    def time_ops(self) -> tuple[TimeOp, ...]:
        return self._time_ops


class FlattenBackend(nn.Module):
    """Optional layers, then a :class:`DenseHead` over the flattened map (a fixed-length back-end)."""

    def __init__(self, *, layers: StackFrontend, head: DenseHead) -> None:
        super().__init__()
        self.layers = layers
        self.head = head

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.head.embed(self.layers(features))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.head.classify(embedding)

    @property
    def time_ops(self) -> tuple[TimeOp, ...]:
        return self.layers.time_ops


class Transpose(nn.Module):
    """(batch, frames, mels) log-mel -> (batch, mels, frames) for 1-D convs across all mel bins."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class Image(nn.Module):
    """(batch, frames, mels) -> (batch, 1, frames, mels), normalised by the input batch norm."""

    def __init__(self) -> None:
        super().__init__()
        self.input_bn = ScalarBatchNorm()  # authors' baselines: BN on the one-channel input (2 parameters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_bn(x.unsqueeze(1))


# ---- SampleCNN (Lee et al. 2017): the 3^9 model -------------------------------------------------
SAMPLECNN_WIDTHS = (128, 128, 256, 256, 256, 256, 256, 256, 512)  # the nine conv-3 + max-pool-3 blocks
SAMPLECNN_SAMPLES = 3 ** 10  # 59,049 samples -> 1 step after the strided conv and nine pools


def build_samplecnn(model_cfg: ModelConfig, *, n_tags: int, audio_cfg: AudioConfig = AudioConfig()) -> Tagger:
    """SampleCNN: strided conv 3 (128), nine conv-3 / pool-3 blocks, conv 3 (512), dropout, dense.

    Lee et al.'s order conv -> BN -> ReLU; 'same' padding inside the blocks.  2,394,162 parameters
    at 50 tags (their paper: 2.39M; Table 2 prints 2.4M).
    """
    layers: list[nn.Module] = [ConvReluBN(dims=1, in_channels=1, out_channels=128, kernel=3, stride=3, bn_first=True)]
    ops = [TimeOp("samplecnn conv 3 stride 3 (128)", 3, 3)]
    in_channels = 128
    for index, width in enumerate(SAMPLECNN_WIDTHS, start=2):
        layers.append(ConvReluBN(dims=1, in_channels=in_channels, out_channels=width, kernel=3, padding=1, bn_first=True,
                                 pool=3))
        ops += [TimeOp(f"samplecnn layer {index}: conv 3 ({width})", 3, 1, 2), TimeOp(f"samplecnn layer {index}: max-pool 3", 3, 3)]
        in_channels = width
    layers.append(ConvReluBN(dims=1, in_channels=in_channels, out_channels=512, kernel=3, padding=1, bn_first=True))
    ops.append(TimeOp("samplecnn layer 11: conv 3 (512)", 3, 1, 2))
    frontend = StackFrontend(nn.Unflatten(1, (1, -1)), *layers, time_ops=tuple(ops))
    steps = trace_time(frontend.time_ops, SAMPLECNN_SAMPLES)[-1][1]
    head = DenseHead(in_features=512 * steps, n_tags=n_tags, dropout=model_cfg.dropout)
    return Tagger(name="samplecnn", frontend=frontend, backend=FlattenBackend(layers=StackFrontend(), head=head),
                  fixed_samples=SAMPLECNN_SAMPLES)


# ---- VGG (Choi et al. 2016), the paper's 450k reproduction ---------------------------------------
# (filters, pool (time, freq), pool stride (time, freq)); dropout 0.25 before convs 2-5
VGG_LAYERS = ((64, (4, 1), (2, 2)), (128, (2, 2), (2, 2)), (128, (2, 2), (2, 2)), (128, (2, 2), (2, 2)), (64, (4, 4), (4, 4)))
VGG_CONV_DROPOUT = 0.25


def build_vgg(model_cfg: ModelConfig, *, n_tags: int, audio_cfg: AudioConfig = AudioConfig()) -> Tagger:
    """VGG: input BN, five 3x3 'same' conv -> ReLU -> BN -> max-pool layers, flatten, dropout, dense."""
    layers: list[nn.Module] = [Image()]
    ops: list[TimeOp] = []
    in_channels, mels = 1, audio_cfg.n_mels
    for index, (width, pool, stride) in enumerate(VGG_LAYERS, start=1):
        conv = ConvReluBN(dims=2, in_channels=in_channels, out_channels=width, kernel=3, padding=1)
        block = [nn.Dropout(VGG_CONV_DROPOUT)] if index > 1 else []
        layers.append(nn.Sequential(*block, conv, nn.MaxPool2d(pool, stride)))
        ops += [TimeOp(f"vgg layer {index}: conv 3x3 ({width})", 3, 1, 2), TimeOp(f"vgg layer {index}: max-pool {pool}", pool[0], stride[0])]
        mels = (mels - pool[1]) // stride[1] + 1
        in_channels = width
    if mels < 1:
        raise ValueError(f"vgg: {audio_cfg.n_mels} mel bands leave no frequency bins after the five pools; expected at least 63")
    frontend = StackFrontend(*layers, time_ops=tuple(ops))
    return _spectrogram_baseline("vgg", frontend, StackFrontend(), in_channels * mels, audio_cfg,
                                 n_tags=n_tags, hidden_units=None, dropout=model_cfg.dropout)


# ---- Timbre CNN (Pons et al. 2017), the public version ------------------------------------------
# (fraction of the mel axis, ((frames, filters), ...)): 92 vertical filters in all
TIMBRE_SHAPES = ((0.8, ((7, 3), (5, 3), (3, 6), (1, 10))), (0.6, ((7, 5), (5, 5), (3, 10), (1, 15))), (0.2, ((7, 5), (5, 5), (3, 10), (1, 15))))


class TimbreFrontend(nn.Module):
    """Input BN, then vertical filters of three heights and four widths, each frequency-max-pooled."""

    def __init__(self, *, n_mels: int) -> None:
        super().__init__()
        self.image = Image()
        self.branches = nn.ModuleList(
            VerticalFilters(width=frames, height=int(fraction * n_mels), filters=filters)
            for fraction, shapes in TIMBRE_SHAPES for frames, filters in shapes
        )
        self.out_features = sum(filters for _, shapes in TIMBRE_SHAPES for _, filters in shapes)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        spectrogram = self.image(logmel)[:, 0].transpose(1, 2).contiguous()  # (batch, mels, frames), normalised
        return torch.cat([branch(spectrogram) for branch in self.branches], dim=1)  # (batch, 92, frames)

    time_ops = (TimeOp("timbre front-end (widest 7 frames, 'same')", 7, 1, 6),)


def build_timbre_cnn(model_cfg: ModelConfig, *, n_tags: int, audio_cfg: AudioConfig = AudioConfig()) -> Tagger:
    """Timbre CNN: vertical-filter front-end; conv 8 x 92 (32), max-pool 4, dense 100, dense tags."""
    frontend = TimbreFrontend(n_mels=audio_cfg.n_mels)
    layers = StackFrontend(
        ConvReluBN(dims=1, in_channels=frontend.out_features, out_channels=32, kernel=8, norm="none"), nn.MaxPool1d(4),
        time_ops=(TimeOp("timbre conv 8x92 (32)", 8), TimeOp("timbre max-pool 4", 4, 4)),
    )
    return _spectrogram_baseline("timbre_cnn", frontend, layers, 32, audio_cfg, n_tags=n_tags, hidden_units=100, dropout=0.0)


# ---- Dieleman & Schrauwen 2014, the public spectrogram version ----------------------------------
def build_dieleman(model_cfg: ModelConfig, *, n_tags: int, audio_cfg: AudioConfig = AudioConfig()) -> Tagger:
    """Dieleman: input BN; conv 8 x mels (32), max-pool 4, conv 8 x 32 (32), max-pool 4, dense 100, dense."""
    frontend = StackFrontend(
        ScalarBatchNorm(), Transpose(),  # input BN, then (batch, mels, frames)
        ConvReluBN(dims=1, in_channels=audio_cfg.n_mels, out_channels=32, kernel=8, norm="none"), nn.MaxPool1d(4),
        time_ops=(TimeOp(f"dieleman conv 8x{audio_cfg.n_mels} (32)", 8), TimeOp("dieleman max-pool 4", 4, 4)),
    )
    layers = StackFrontend(
        ConvReluBN(dims=1, in_channels=32, out_channels=32, kernel=8, norm="none"), nn.MaxPool1d(4),
        time_ops=(TimeOp("dieleman conv 8x32 (32)", 8), TimeOp("dieleman max-pool 4", 4, 4)),
    )
    return _spectrogram_baseline("dieleman", frontend, layers, 32, audio_cfg, n_tags=n_tags, hidden_units=100, dropout=0.0)


def _spectrogram_baseline(
    name: str, frontend: nn.Module, layers: StackFrontend, features_per_step: int, audio_cfg: AudioConfig,
    *, n_tags: int, hidden_units: int | None, dropout: float,
) -> Tagger:
    """A log-mel baseline whose dense layer flattens the map of a 3 s input (187 frames)."""
    input_stage = LogMelInput(audio_cfg)
    samples = BASELINE_SECONDS * audio_cfg.sample_rate
    steps = trace_time(input_stage.time_ops + frontend.time_ops + layers.time_ops, samples)[-1][1]
    if steps < 1:
        raise ValueError(f"{name}: a {BASELINE_SECONDS} s input leaves no time steps before the dense layer")
    head = DenseHead(in_features=features_per_step * steps, n_tags=n_tags, hidden_units=hidden_units, dropout=dropout)
    return Tagger(name=name, frontend=frontend, backend=FlattenBackend(layers=layers, head=head),
                  input_stage=input_stage, fixed_samples=samples)


__all__ = ["build_samplecnn", "build_vgg", "build_timbre_cnn", "build_dieleman"]
