"""The two front-ends compared by the paper (§4, Figure 2, top-left and right).

Each maps its input to a feature map (batch, M', time) for the shared back-end, where M' is
the front-end's whole feature axis, and declares its ``time_ops`` for the shape arithmetic.
"""
from __future__ import annotations

import torch
from torch import nn

from study.models.blocks import ConvReluBN, TimeOp, VerticalFilters

# §4 "Waveform front-end": filters per layer at x1 (7 layers for MTT/MSD, 9 for the 1.2M set)
WAVEFORM_WIDTHS = {
    7: (64, 64, 64, 128, 128, 128, 256),
    9: (64, 64, 64, 128, 128, 128, 128, 128, 256),
}
SPECTROGRAM_FILTERS_X1 = 16  # footnotes 5-6: nf = 16 at x1 (x1/2 = 8, x2 = 32)


def scaled_width(width: int, multiplier: float, *, what: str) -> int:
    """A filter count times the front-end multiplier of Tables 2-3 ('# filters xN')."""
    scaled = int(round(width * multiplier))
    if scaled < 1:
        raise ValueError(f"{what}: frontend_multiplier {multiplier} leaves {width} x {multiplier} < 1 filter")
    return scaled


class WaveformFrontend(nn.Module):
    """Sample-level front-end (Lee et al. 2017) on raw 16 kHz samples, no preprocessing.

    Layer 1: 3-tap conv with stride 3, no pooling; each later layer: 3-tap conv -> ReLU -> BN ->
    max-pool 3.  Valid padding throughout (authors' code).  (batch, samples) -> (batch, M', time).
    """

    def __init__(self, *, layers: int = 7, multiplier: float = 1.0) -> None:
        super().__init__()
        if layers not in WAVEFORM_WIDTHS:
            raise ValueError(f"waveform_layers must be one of {sorted(WAVEFORM_WIDTHS)}, got {layers}")
        widths = [scaled_width(w, multiplier, what="waveform front-end") for w in WAVEFORM_WIDTHS[layers]]
        blocks: list[nn.Module] = []
        in_channels = 1
        for index, width in enumerate(widths):
            first = index == 0
            blocks.append(ConvReluBN(dims=1, in_channels=in_channels, out_channels=width, kernel=3,
                                     stride=3 if first else 1, pool=None if first else 3))
            in_channels = width
        self.layers = nn.Sequential(*blocks)
        self.widths = tuple(widths)
        self.out_features = widths[-1]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.layers(waveform.unsqueeze(1))  # (batch, M', time)

    @property
    def time_ops(self) -> tuple[TimeOp, ...]:
        ops = [TimeOp(f"waveform layer 1: conv 3 stride 3 ({self.widths[0]})", 3, 3)]
        for index, width in enumerate(self.widths[1:], start=2):
            ops += [TimeOp(f"waveform layer {index}: conv 3 ({width})", 3), TimeOp(f"waveform layer {index}: max-pool 3", 3, 3)]
        return tuple(ops)


class SpectrogramFrontend(nn.Module):
    """Musically motivated front-end (§4): one layer of many filter shapes in two branches.

    Timbral branch: vertical filters of 86 and 38 mel bins (int(0.9 * 96), int(0.4 * 96)) and
    widths 7/3/1 frames, max-pooled over frequency for pitch invariance.  Temporal branch: 1-D
    filters of 165/128/64/32 frames over the energy envelope (the mean over mel bins), 'same'
    padding.  Both keep the time length; channels are concatenated: M' = 29 nf.
    (batch, frames, n_mels) standardised log-mel -> (batch, M', frames).
    """

    # (frames, fraction of the mel axis, filters in units of nf): footnote 5 at x1 = 16, 32, 64, 16, 32, 64
    TIMBRAL = ((7, 0.9, 1), (3, 0.9, 2), (1, 0.9, 4), (7, 0.4, 1), (3, 0.4, 2), (1, 0.4, 4))
    # (frames, filters in units of nf): footnote 6 at x1 = 16, 32, 64, 128
    TEMPORAL = ((165, 1), (128, 2), (64, 4), (32, 8))

    def __init__(self, *, n_mels: int = 96, multiplier: float = 1.0) -> None:
        super().__init__()
        nf = scaled_width(SPECTROGRAM_FILTERS_X1, multiplier, what="spectrogram front-end")
        self.timbral = nn.ModuleList(
            VerticalFilters(width=width, height=int(fraction * n_mels), filters=units * nf)
            for width, fraction, units in self.TIMBRAL
        )
        self.temporal = nn.ModuleList(
            nn.Sequential(
                nn.ConstantPad1d(((frames - 1) // 2, frames // 2), 0.0),  # 'same': an even kernel's extra zero at the end, as in TF
                ConvReluBN(dims=1, in_channels=1, out_channels=units * nf, kernel=frames),
            )
            for frames, units in self.TEMPORAL
        )
        self.nf = nf
        self.out_features = nf * sum(units for *_, units in self.TIMBRAL + self.TEMPORAL)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        spectrogram = logmel.transpose(1, 2).contiguous()  # (batch, mels, frames)
        envelope = spectrogram.mean(dim=1, keepdim=True)  # (batch, 1, frames)
        timbral = [branch(spectrogram) for branch in self.timbral]  # each (batch, filters, frames)
        temporal = [branch(envelope) for branch in self.temporal]
        return torch.cat(timbral + temporal, dim=1)  # (batch, M', frames)

    @property
    def time_ops(self) -> tuple[TimeOp, ...]:
        widest = max(frames for frames, _ in self.TEMPORAL)
        return (TimeOp(f"spectrogram front-end (widest: temporal {widest}x1, 'same')", widest, 1, widest - 1),)
