"""musicnn and its VGG baseline: the authors' follow-up taggers, ported to run their published weights.

The `musicnn` package (Pons & Serra 2019, ISC licence) widens this paper's spectrogram model
(§4): a timbral branch of two vertical filters (7 frames x 38 and x 67 mel bins, 204 filters
each) and a temporal branch of 'same'-padded 128/64/32-frame filters applied to every mel bin
(51 each), both max-pooled over frequency after an input batch norm; a "mid-end" of three 7-frame
1-D convolutions with residuals whose outputs are concatenated with the front-end's (a dense
connection, 753 features); global max and mean pooling; batch norm, a 200-unit dense layer and the
output layer.  Its VGG is Choi et al.'s five 3x3 layers with 128 filters each.

Modules are registered in the order TensorFlow created the variables, so the checkpoint loader
(:func:`load_tf_variables`) can name each layer as TF did: conv2d, conv2d_1, ... (VGG: 1CNN ..
5CNN), batch_normalization, batch_normalization_1, ..., dense, dense_1.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from study.audio import LogMel
from study.config import AudioConfig, ModelConfig
from study.models.baselines import FlattenBackend, Image, StackFrontend
from study.models.blocks import ConvReluBN, DenseHead, TimeOp, VerticalFilters, batch_norm, trace_time
from study.models.frontends import scaled_width
from study.models.fused import AxisPool
from study.models.tagger import Tagger

# musicnn/models.py, build_musicnn(num_filt=1.6) with frontend type '7774timbraltemporal'
TIMBRAL_SHAPES = ((7, 0.4), (7, 0.7))  # (frames, fraction of the mel axis): 7 x 38 and 7 x 67
TEMPORAL_FRAMES = (128, 64, 32)
TIMBRAL_FILTERS = int(1.6 * 128)  # 204
TEMPORAL_FILTERS = int(1.6 * 32)  # 51
PATCH_FRAMES = 187  # musicnn's 3 s input: librosa.time_to_frames(3 s) + 1

# musicnn/models.py vgg(num_filters=128): (filters, pool (time, freq), pool stride (time, freq))
VGG_LAYERS = ((128, (4, 1), (2, 2)), (128, (2, 2), (2, 2)), (128, (2, 2), (2, 2)), (128, (2, 2), (2, 2)), (128, (4, 4), (4, 4)))
VGG_CONV_DROPOUT = 0.25


class MusicnnInput(nn.Module):
    """Waveform -> musicnn's log-mel, (batch, samples) -> (batch, frames, n_mels).

    The package stores the librosa mel spectrogram in float16, then takes log10(1 + 10000 mel);
    under NumPy 1 the product is promoted to float32 (under NumPy 2 it stays float16 and
    overflows; docs/paper-details.md, "Released taggers (musicnn)").  ``float16_mel`` keeps the
    float16 rounding of the mel, as the weights were trained and as the package ran under NumPy 1.  No standardisation: the front-end's input
    batch norm plays that part.
    """

    def __init__(self, audio_cfg: AudioConfig = AudioConfig(), *, float16_mel: bool = True) -> None:
        super().__init__()
        self.logmel = LogMel(audio_cfg)
        self.float16_mel = float16_mel
        self.n_fft, self.hop_length, self.sample_rate = audio_cfg.n_fft, audio_cfg.hop_length, audio_cfg.sample_rate

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        mel = self.logmel.mel_power(waveform)  # (batch, n_mels, frames), float32
        if self.float16_mel:
            mel = mel.half().float()  # the package's float16 storage, then float32 arithmetic
        return self.logmel.compress(mel)  # (batch, frames, n_mels)

    def fit(self, waveforms: Iterable[torch.Tensor]) -> None:
        """Nothing to fit: musicnn normalises with its input batch norm."""

    @property
    def time_ops(self) -> tuple[TimeOp, ...]:
        return (TimeOp(f"log-mel STFT (window {self.n_fft}, hop {self.hop_length})", self.n_fft, self.hop_length, self.n_fft),)


class TemporalFilters(nn.Module):
    """musicnn's temporal filters: ``frames`` x 1 kernels slid along time over EVERY mel bin, ReLU,
    BN, then a max over frequency.  TF's 'same' padding puts the extra zero of an even kernel
    after the input (63 before and 64 after for 128 frames); the padding is spelled out here.
    (batch, 1, frames, mels) -> (batch, filters, frames).

    Unlike this paper's temporal branch (§4), no mean over the mel axis comes first.
    """

    def __init__(self, *, frames: int, filters: int) -> None:
        super().__init__()
        self.frames = frames
        self.pad = nn.ZeroPad2d((0, 0, (frames - 1) // 2, frames // 2))  # (freq left, right, time before, after)
        self.block = ConvReluBN(dims=2, in_channels=1, out_channels=filters, kernel=(frames, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.block(self.pad(image), AxisPool(3))  # (batch, filters, frames): max over frequency

    def extra_repr(self) -> str:
        return f"{self.frames}x1"


class MusicnnFrontend(nn.Module):
    """Input BN, timbral branch (7x38, 7x67), temporal branch (128, 64, 32 frames), concatenated.

    (batch, frames, mels) log-mel -> (batch, 2 x 204 + 3 x 51 = 561, frames) at x1.
    """

    def __init__(self, *, n_mels: int = 96, multiplier: float = 1.0) -> None:
        super().__init__()
        self.image = Image()  # input batch norm over the one-channel image (2 parameters)
        timbral = scaled_width(TIMBRAL_FILTERS, multiplier, what="musicnn timbral branch")
        temporal = scaled_width(TEMPORAL_FILTERS, multiplier, what="musicnn temporal branch")
        self.timbral = nn.ModuleList(
            VerticalFilters(width=frames, height=int(fraction * n_mels), filters=timbral) for frames, fraction in TIMBRAL_SHAPES
        )
        self.temporal = nn.ModuleList(TemporalFilters(frames=frames, filters=temporal) for frames in TEMPORAL_FRAMES)
        self.out_features = timbral * len(TIMBRAL_SHAPES) + temporal * len(TEMPORAL_FRAMES)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        image = self.image(logmel)  # (batch, 1, frames, mels)
        spectrogram = image[:, 0].transpose(1, 2).contiguous()  # (batch, mels, frames)
        timbral = [branch(spectrogram) for branch in self.timbral]
        temporal = [branch(image) for branch in self.temporal]
        return torch.cat(timbral + temporal, dim=1)  # (batch, 561, frames)

    @property
    def time_ops(self) -> tuple[TimeOp, ...]:
        widest = max(TEMPORAL_FRAMES)
        return (TimeOp(f"musicnn front-end (widest: temporal {widest}x1, 'same')", widest, 1, widest - 1),)


class MusicnnBackend(nn.Module):
    """Mid-end and back-end: (batch, M', frames) -> embedding (batch, dense_units) -> logits.

    Mid-end: three 7-frame convolutions (zero-padded to keep the length) with per-filter BN, the
    2nd and 3rd residual; the front-end's and all three outputs are concatenated (M' + 3F).
    Back-end: global max and mean over time, interleaved per feature as TF flattens a
    (features, 2) map, batch norm, then dropout -> dense -> ReLU -> BN (the penultimate
    features) -> dropout -> dense.
    """

    def __init__(self, *, in_features: int, n_tags: int, filters: int = 64, dense_units: int = 200, dropout: float = 0.5) -> None:
        super().__init__()
        widths = (in_features, filters, filters)
        self.midend = nn.ModuleList(
            ConvReluBN(dims=1, in_channels=width, out_channels=filters, kernel=7, padding=3) for width in widths
        )
        pooled = 2 * (in_features + len(widths) * filters)
        self.pooled_bn = batch_norm(pooled, 1)
        self.head = DenseHead(in_features=pooled, n_tags=n_tags, hidden_units=dense_units, dropout=dropout, hidden_bn=True)
        self.filters = filters

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        outputs, x = [features], self.midend[0](features)  # conv1 adapts M' -> F, no residual
        outputs.append(x)
        for conv in self.midend[1:]:
            x = conv(x) + x  # (batch, F, frames)
            outputs.append(x)
        dense = torch.cat(outputs, dim=1)  # (batch, M' + 3F, frames)
        pooled = torch.stack([dense.amax(dim=2), dense.mean(dim=2)], dim=2).flatten(1)  # (batch, 2(M' + 3F)): max, mean per feature
        return self.head.embed(self.pooled_bn(pooled))  # (batch, dense_units)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.head.classify(embedding)

    @property
    def time_ops(self) -> tuple[TimeOp, ...]:
        return tuple(TimeOp(f"mid-end conv {index} 7 frames, padded", 7, 1, 6) for index in range(1, 4))


class ChannelsLast(nn.Module):
    """(batch, C, time, freq) -> (batch, time, freq, C), so flattening follows TF's NHWC order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


def build_musicnn(model_cfg: ModelConfig, *, n_tags: int, audio_cfg: AudioConfig = AudioConfig()) -> Tagger:
    """musicnn: ``frontend_multiplier`` scales the 204/51 front-end filters (1 = the package's
    num_filt 1.6), ``backend_filters`` the mid-end, ``dense_units`` the back-end: 64/200 for the
    published MTT/MSD models (787,159 parameters), 512/500 (ModelConfig's defaults) for 'MSD_musicnn_big'."""
    frontend = MusicnnFrontend(n_mels=audio_cfg.n_mels, multiplier=model_cfg.frontend_multiplier)
    backend = MusicnnBackend(in_features=frontend.out_features, n_tags=n_tags, filters=model_cfg.backend_filters,
                             dense_units=model_cfg.dense_units, dropout=model_cfg.dropout)
    model = Tagger(name="musicnn", frontend=frontend, backend=backend, input_stage=MusicnnInput(audio_cfg))
    model.min_samples = max(model.min_samples, audio_cfg.n_fft // 2 + 1)  # the STFT's reflect padding needs this many
    return model


def build_musicnn_vgg(model_cfg: ModelConfig, *, n_tags: int, audio_cfg: AudioConfig = AudioConfig()) -> Tagger:
    """musicnn's VGG: input BN, five 3x3 'same' conv -> ReLU -> BN -> max-pool layers of 128 filters
    (x ``frontend_multiplier``), dropout 0.25 before convs 2-5, flatten, dropout, dense.  It flattens the
    map of one 3 s patch, so it takes a fixed length (48,000 samples; 187 or 188 frames give the same map)."""
    layers: list[nn.Module] = [Image()]
    ops: list[TimeOp] = []
    in_channels, mels = 1, audio_cfg.n_mels
    for index, (width, pool, stride) in enumerate(VGG_LAYERS, start=1):
        width = scaled_width(width, model_cfg.frontend_multiplier, what="musicnn vgg")
        dropout = [nn.Dropout(VGG_CONV_DROPOUT)] if index > 1 else []
        conv = ConvReluBN(dims=2, in_channels=in_channels, out_channels=width, kernel=3, padding=1)
        layers.append(nn.Sequential(*dropout, conv, nn.MaxPool2d(pool, stride)))
        ops += [TimeOp(f"vgg layer {index}: conv 3x3 ({width})", 3, 1, 2), TimeOp(f"vgg layer {index}: max-pool {pool}", pool[0], stride[0])]
        mels = (mels - pool[1]) // stride[1] + 1
        in_channels = width
    frontend = StackFrontend(*layers, time_ops=tuple(ops))
    input_stage = MusicnnInput(audio_cfg)
    samples = 3 * audio_cfg.sample_rate
    steps = trace_time(input_stage.time_ops + frontend.time_ops, samples)[-1][1]
    head = DenseHead(in_features=steps * mels * in_channels, n_tags=n_tags, dropout=model_cfg.dropout)
    backend = FlattenBackend(layers=StackFrontend(ChannelsLast()), head=head)
    return Tagger(name="musicnn_vgg", frontend=frontend, backend=backend, input_stage=input_stage, fixed_samples=samples)


# ---- loading the package's TF1 checkpoints ---------------------------------------------------------
def _tf_layer_names(model: Tagger) -> list[tuple[str, nn.Module]]:
    """(TF layer name, torch layer) for every layer with variables, in TF's creation order."""
    counts = {"conv2d": 0, "batch_normalization": 0, "dense": 0}
    named = []
    for layer in model.modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            base = "conv2d"
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            base = "batch_normalization"
        elif isinstance(layer, nn.Linear):
            base = "dense"
        else:
            continue
        index = counts[base]
        counts[base] += 1
        if base == "conv2d" and model.name == "musicnn_vgg":
            name = f"{index + 1}CNN"  # vgg() names its convolutions explicitly
        else:
            name = base if index == 0 else f"{base}_{index}"
        named.append((name, layer))
    return named


def _tf_kernel(kernel: np.ndarray, layer: nn.Module) -> np.ndarray:
    """TF kernel layout -> torch weight layout (TF convs here are all 2-D, in NHWC = time, freq)."""
    if isinstance(layer, nn.Conv2d):
        return kernel.transpose(3, 2, 0, 1)  # (time, freq, in, out) -> (out, in, time, freq)
    if isinstance(layer, nn.Conv1d):
        # a 7 x M' kernel over a one-channel (time, features) image = a 1-D conv over M' channels
        return kernel[:, :, 0, :].transpose(2, 1, 0)  # (time, M', 1, out) -> (out, M', time)
    return kernel.T  # dense: (in, out) -> (out, in)


def load_tf_variables(model: Tagger, variables: dict[str, np.ndarray], *, source: str = "checkpoint") -> None:
    """Copy a musicnn TF checkpoint's variables into ``model`` (BN epsilon 1e-3 as TF).

    Every trainable variable of the checkpoint must be used, and every shape must match; the
    optimizer's slots (``*/Adam*``, ``beta*_power``) are ignored.
    """
    used: set[str] = set()
    assignments = {
        nn.Conv1d: {"kernel": "weight", "bias": "bias"}, nn.Conv2d: {"kernel": "weight", "bias": "bias"},
        nn.Linear: {"kernel": "weight", "bias": "bias"},
        nn.BatchNorm1d: {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"},
        nn.BatchNorm2d: {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"},
    }
    with torch.no_grad():
        for name, layer in _tf_layer_names(model):
            for tf_suffix, attribute in assignments[type(layer)].items():
                key = f"{name}/{tf_suffix}"
                if key not in variables:
                    raise KeyError(f"{source}: no variable {key!r} for {model.name} layer {type(layer).__name__}")
                value = variables[key]
                if tf_suffix == "kernel":
                    value = _tf_kernel(value, layer)
                target = getattr(layer, attribute)
                if tuple(value.shape) != tuple(target.shape):
                    raise ValueError(f"{source}: {key!r} has shape {tuple(variables[key].shape)}, which does not fit "
                                     f"{model.name}'s {type(layer).__name__} {attribute} of shape {tuple(target.shape)}")
                target.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
                used.add(key)
    unused = sorted(k for k in trainable_names(variables) if k not in used)
    if unused:
        raise ValueError(f"{source}: {len(unused)} trainable variables have no place in {model.name}: {unused[:5]}")


def trainable_names(variables: Iterable[str]) -> list[str]:
    """The checkpoint's trainable variables: kernels, biases, BN gamma/beta (not moving statistics or Adam's slots)."""
    return [k for k in variables if k.rsplit("/", 1)[-1] in ("kernel", "bias", "gamma", "beta")]  # slots end in Adam, Adam_1


__all__ = ["build_musicnn", "build_musicnn_vgg", "load_tf_variables", "trainable_names", "MusicnnInput", "PATCH_FRAMES"]
