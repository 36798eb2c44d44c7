"""Building blocks shared by every network in ``study.models``, each written once.

The authors trained in TensorFlow 1; the conventions that change counts or training
dynamics are reproduced here (docs/paper-details.md, "Initialisation and batch norm",
"Shared back-end" and "Parameter counts"): convolution -> ReLU -> batch norm (BN after the ReLU), TF's BN momentum 0.99 / epsilon 1e-3,
He fan-in initialisation, and a "scalar" batch norm with one mean/variance and one gamma/beta.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from study.audio import LogMel
from study.config import AudioConfig
from study.models.fused import AxisPool, WindowPool, conv_norm_pool, fast_path

BN_MOMENTUM = 0.01  # torch's momentum = 1 - TF's 0.99
BN_EPS = 1e-3  # TF's default epsilon


def batch_norm(channels: int, dims: int) -> nn.Module:
    """Per-channel batch norm with TF's statistics settings, for 1-D or 2-D feature maps."""
    norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims]
    return norm(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class ScalarBatchNorm(nn.Module):
    """Batch norm over a channel axis of size 1: one mean/variance, one gamma and one beta.

    TF's batch norm on a (batch, time, features, 1) map normalises every value with the same
    statistics; the back-end's conv2/conv3 and the baselines' input BN are built that way, and
    its 2 parameters (instead of 2 per filter) are what make Tables 2-3's counts come out.
    """

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(1, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], 1, -1)  # (batch, 1, every other value)
        return self.norm(flat).reshape(x.shape)


class ConvReluBN(nn.Module):
    """One convolution with bias, ReLU and batch norm, in the authors' order (BN after ReLU),
    optionally followed by a max-pool.

    ``dims`` picks Conv1d (feature maps (batch, channels, time)) or Conv2d ((batch, channels,
    time, freq)); ``norm`` is 'channel' (per filter), 'scalar' (:class:`ScalarBatchNorm`) or
    'none'; ``bn_first`` gives conv -> BN -> ReLU, Lee et al.'s order for SampleCNN; ``pool``
    max-pools non-overlapping windows of that many steps along time (1-D only).  With per-channel
    batch norm and a pool the three steps run pool-first (:mod:`study.models.fused`).
    """

    def __init__(
        self, *, dims: int, in_channels: int, out_channels: int, kernel: int | tuple[int, int],
        stride: int = 1, padding: int | str | tuple[int, int] = 0, norm: str = "channel", bn_first: bool = False,
        pool: int | None = None,
    ) -> None:
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
        self.conv = conv(in_channels, out_channels, kernel, stride=stride, padding=padding)
        if norm == "channel":
            self.norm: nn.Module = batch_norm(out_channels, dims)
        elif norm == "scalar":
            self.norm = ScalarBatchNorm()
        elif norm == "none":
            self.norm = nn.Identity()
        else:
            raise ValueError(f"ConvReluBN: norm must be 'channel', 'scalar' or 'none', got {norm!r}")
        if pool is not None and dims != 1:
            raise ValueError(f"ConvReluBN: pool is for 1-D feature maps, got dims={dims}")
        self.bn_first = bn_first
        self.pool = pool

    def forward(self, x: torch.Tensor, pool: WindowPool | AxisPool | None = None) -> torch.Tensor:
        """The block on ``x``; ``pool`` overrides the time window (e.g. a max over a whole axis)."""
        pool = pool or (WindowPool(self.pool) if self.pool else None)
        conv = self.conv
        if fast_path(x, self.norm) and not isinstance(conv.padding, str):
            return conv_norm_pool(x, conv.weight, conv.bias, self.norm, stride=conv.stride, padding=conv.padding,
                                  relu_first=not self.bn_first, pool=pool)
        z = conv(x)
        y = torch.relu(self.norm(z)) if self.bn_first else self.norm(torch.relu(z))
        return y if pool is None else pool.max(y)


# Above this many (filter, frequency position) pairs the banded form does more arithmetic than it saves:
# measured on one CPU core, it trains 1.5-10x faster up to ~1000 (e.g. 16 filters 38 bins tall, 59 positions)
# and slower beyond (64 such filters: 1.5x slower), where the 2-D convolution's own kernels do well.
BANDED_CHANNELS = 1024


class VerticalFilters(nn.Module):
    """Timbral filters (Pons et al. 2017): ``width`` frames x ``height`` mel bins, then a max over
    the remaining frequency axis, so the same timbre is found at any pitch (§4, Figure 2).

    Time is zero-padded to keep its length (odd widths); frequency is not padded.
    (batch, mels, time) -> (batch, filters, time).

    The weights are a 2-D convolution's, (filters, 1, width, height).  A tall filter with one
    input channel is a poor shape for CPU convolution kernels, so on a CPU a layer with few filters
    (:data:`BANDED_CHANNELS`) runs as the equivalent 1-D convolution over time with the mel bins
    as input channels: one output channel per (filter, frequency position), its weights the filter
    shifted to that position (a banded matrix, :func:`banded_weights`).  The sums are the same;
    only their order differs.
    """

    def __init__(self, *, width: int, height: int, filters: int, norm: str = "channel") -> None:
        super().__init__()
        if width % 2 != 1:
            raise ValueError(f"VerticalFilters: width must be odd to keep the time length, got {width}")
        self.width, self.height = width, height
        self.block = ConvReluBN(
            dims=2, in_channels=1, out_channels=filters, kernel=(width, height), padding=(width // 2, 0), norm=norm,
        )

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        block = self.block
        positions = spectrogram.shape[1] - self.height + 1
        if not fast_path(spectrogram, block.norm) or block.conv.out_channels * positions > BANDED_CHANNELS:
            image = spectrogram.transpose(1, 2).unsqueeze(1)  # (batch, 1, frames, mels)
            return block(image, AxisPool(3))  # (batch, filters, frames)
        weight, positions = banded_weights(block.conv.weight, spectrogram.shape[1])  # (filters x positions, mels, width)
        return conv_norm_pool(spectrogram, weight, block.conv.bias.repeat_interleave(positions), block.norm,
                              stride=(1,), padding=(self.width // 2,), pool=AxisPool(2), positions=positions)

    def extra_repr(self) -> str:
        return f"{self.width}x{self.height}"


def banded_weights(weight: torch.Tensor, mels: int) -> tuple[torch.Tensor, int]:
    """A (filters, 1, width, height) 2-D kernel as 1-D convolution weights over ``mels`` input channels.

    Output channel ``f * positions + p`` holds filter ``f`` placed at mel bins ``p .. p + height - 1``
    and zeros elsewhere, for each of the ``positions = mels - height + 1`` valid placements.
    Returns (weights (filters x positions, mels, width), positions); differentiable in ``weight``.
    """
    filters, _, width, height = weight.shape
    positions = mels - height + 1
    if positions < 1:
        raise ValueError(f"a filter {height} mel bins tall does not fit {mels} mel bins")
    padded = nn.functional.pad(weight[:, 0].transpose(1, 2), (0, 0, positions - 1, positions - 1))  # (F, 2 mels - height, width)
    bands = padded.unfold(1, mels, 1)  # (F, positions, width, mels), position counted from the last
    return bands.flip(1).permute(0, 1, 3, 2).reshape(filters * positions, mels, width), positions


class DenseHead(nn.Module):
    """The dense end of a tagger: flatten, optional hidden dense layer, output layer.

    Paper back-end (§4 "Parameters": 50% dropout before every dense layer): dropout -> dense
    (hidden) -> ReLU -> BN -> dropout -> dense (tags).  Without ``hidden_units``: dropout ->
    dense (tags).  ``embed`` returns the penultimate features, ``classify`` maps them to logits.
    """

    def __init__(
        self, *, in_features: int, n_tags: int, hidden_units: int | None = None, dropout: float = 0.0,
        hidden_bn: bool = False,
    ) -> None:
        super().__init__()
        self.hidden: nn.Module | None = None
        if hidden_units is not None:
            layers: list[nn.Module] = [nn.Dropout(dropout), nn.Linear(in_features, hidden_units), nn.ReLU()]
            if hidden_bn:
                layers.append(batch_norm(hidden_units, 1))
            self.hidden = nn.Sequential(*layers)
            in_features = hidden_units
        self.embedding_size = in_features
        self.output = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_tags))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)  # (batch, features)
        return flat if self.hidden is None else self.hidden(flat)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.output(embedding)  # logits (batch, tags)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))


class LogMelMemo:
    """The log-mels of a pass that repeats batch for batch (the validation pass, the same clips in the same
    order every epoch), kept after the first pass so later passes skip the STFT and the filterbank.

    The n-th batch of a pass is looked up by its position and must match what was stored there (shape,
    float64 sum, a strided sample of its values); a batch that does not is computed and stored afresh.
    Up to ``limit_bytes`` of log-mels are kept; batches past the limit are computed every pass.
    """

    def __init__(self, limit_bytes: int = 512 << 20) -> None:
        self.entries: list[tuple[tuple, torch.Tensor, torch.Tensor]] = []  # (shape, fingerprint, log-mel)
        self.position, self.limit, self.bytes = 0, limit_bytes, 0
        self.hits = 0

    def rewind(self) -> None:
        self.position = 0

    def __call__(self, waveform: torch.Tensor, compute) -> torch.Tensor:
        position, self.position = self.position, self.position + 1
        stored = position < len(self.entries)
        if not stored and (position > len(self.entries) or self.bytes >= self.limit):
            return compute(waveform)  # past the limit: neither read nor kept, so not fingerprinted either
        shape = (tuple(waveform.shape), waveform.dtype, waveform.device)
        mark = torch.cat([torch.sum(waveform, dtype=torch.float64).reshape(1),
                          waveform.reshape(-1)[::4099].double()])  # (1 + samples / 4099,)
        if stored:
            stored_shape, stored_mark, mel = self.entries[position]
            if stored_shape == shape and torch.equal(stored_mark, mark):
                self.hits += 1
                return mel
            self.bytes -= _bytes(mel)  # another batch at this position: replaced below
        mel = compute(waveform)
        if stored:
            self.entries[position] = (shape, mark, mel)
            self.bytes += _bytes(mel)
        elif self.bytes + _bytes(mel) <= self.limit:
            self.entries.append((shape, mark, mel))
            self.bytes += _bytes(mel)
        return mel


def _bytes(tensor: torch.Tensor) -> int:
    return tensor.element_size() * tensor.numel()


@contextmanager
def remembering_logmels(model: nn.Module, memo: LogMelMemo) -> Iterator[None]:
    """Within the block, every log-mel input stage of ``model`` scores through ``memo`` (when no gradient
    is taken), from the memo's first position: wrap each repetition of the same pass in it."""
    stages = [module for module in model.modules() if isinstance(module, LogMelInput)]
    memo.rewind()
    for stage in stages:
        stage.memo = memo
    try:
        yield
    finally:
        for stage in stages:
            stage.memo = None


class LogMelInput(nn.Module):
    """Waveform -> standardised log-mel, (batch, samples) -> (batch, frames, n_mels).

    ONE scalar mean and ONE scalar std over all bins and frames of training audio (docs/paper-details.md,
    "Input representation"), stored with the model (buffers ``input_mean``/``input_std``, set by :meth:`fit`).
    Under :func:`remembering_logmels` a repeated scoring pass reads its log-mels from a :class:`LogMelMemo`.
    """

    def __init__(self, audio_cfg: AudioConfig) -> None:
        super().__init__()
        self.logmel = LogMel(audio_cfg)
        self.n_fft, self.hop_length, self.n_mels = audio_cfg.n_fft, audio_cfg.hop_length, audio_cfg.n_mels
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))
        self.memo: LogMelMemo | None = None

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        remembered = self.memo is not None and not torch.is_grad_enabled()
        mel = self.memo(waveform, self.logmel) if remembered else self.logmel(waveform)
        return (mel - self.input_mean) / self.input_std  # float32 even under autocast

    @torch.no_grad()
    def fit(self, waveforms: Iterable[torch.Tensor]) -> None:
        """Set the scalar mean/std from an iterable of (samples,) or (batch, samples) tensors."""
        device = self.input_mean.device
        total = torch.zeros((), dtype=torch.float64, device=device)
        squares = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        for waveform in waveforms:
            waveform = torch.as_tensor(waveform, dtype=torch.float32, device=device)
            batch = waveform.reshape(1, -1) if waveform.dim() == 1 else waveform
            mel = self.logmel(batch).double()
            total += mel.sum()
            squares += mel.square().sum()
            count += mel.numel()
        if count == 0:
            raise ValueError("fit_input_stats: no waveforms given; need training audio to estimate the log-mel mean/std")
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(0).sqrt()
        if not float(std) > 0:
            raise ValueError(f"fit_input_stats: the log-mel std of the given audio is {float(std)}; expected > 0")
        self.input_mean.fill_(float(mean))
        self.input_std.fill_(float(std))

    @property
    def time_ops(self) -> tuple["TimeOp", ...]:
        # centred STFT: reflect-padded by n_fft // 2 each side -> 1 + n // hop frames
        return (TimeOp(f"log-mel STFT (window {self.n_fft}, hop {self.hop_length})", self.n_fft, self.hop_length, self.n_fft),)


# ---- time-axis arithmetic: shapes, smallest input, receptive field ------------------------------
@dataclass(frozen=True)
class TimeOp:
    """One operation's effect on the time axis: output = (length + padding - kernel) // stride + 1.

    Networks declare their ops so that the smallest usable input and the receptive field follow
    from arithmetic instead of a forward pass.
    """

    name: str
    kernel: int
    stride: int = 1
    padding: int = 0  # total zero-padding added to the time axis (both sides)

    def steps(self, length: int) -> int:
        return (length + self.padding - self.kernel) // self.stride + 1


def trace_time(ops: Sequence[TimeOp], n_samples: int) -> list[tuple[str, int, int]]:
    """(op name, output time steps, receptive field in input samples) after each op."""
    rows, length, field, jump = [], n_samples, 1, 1
    for op in ops:
        length = op.steps(length) if length > 0 else 0
        field += (op.kernel - 1) * jump
        jump *= op.stride
        rows.append((op.name, max(length, 0), field))
    return rows


def smallest_input(ops: Sequence[TimeOp], *, upper: int = 1 << 26) -> int:
    """The fewest samples for which every op still has at least one time step."""
    def fits(n: int) -> bool:
        return all(steps >= 1 for _, steps, _ in trace_time(ops, n))

    if not fits(upper):
        raise ValueError(f"no input of up to {upper} samples fits these time operations")
    low, high = 1, upper  # fits() is monotone in n
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle + 1, high)
    return low


# ---- TF-style initialisation ------------------------------------------------------------------
def init_tf_style(module: nn.Module) -> None:
    """He fan-in kernels, zero biases, BN gamma 1 / beta 0 (docs/paper-details.md, "Initialisation and batch norm").

    TF1's ``variance_scaling_initializer()`` draws a normal truncated at 2 std with
    std = sqrt(1.3 * 2 / fan_in); the factor 1.3 restores the variance the truncation removes.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            fan_in = layer.weight[0].numel()
            std = math.sqrt(1.3 * 2.0 / fan_in)
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
