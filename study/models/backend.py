"""The back-end both front-ends share (§4 "Shared back-end", Figure 2 bottom-left).

Three 1-D convolutions of 7 x M' / 7 x F with two residual connections, a temporal max-pool
x2, global max and mean pooling (any input length), a dense layer and the output layer.
"""
from __future__ import annotations

import torch
from torch import nn

from study.models.blocks import ConvReluBN, DenseHead, TimeOp


class Backend(nn.Module):
    """(batch, M', time) front-end features -> logits (batch, n_tags).

    conv1 sees every front-end feature at once (a 7 x M' kernel on a one-channel image is a
    Conv1d over M' channels: the same weights and count).  conv2/conv3 use the scalar batch
    norm of the authors' code (docs/paper-details.md, "Shared back-end": 2 parameters each, not 2F).
    """

    def __init__(self, *, in_features: int, n_tags: int, filters: int = 512, dense_units: int = 500, dropout: float = 0.5) -> None:
        super().__init__()
        self.conv1 = ConvReluBN(dims=1, in_channels=in_features, out_channels=filters, kernel=7)  # valid: T -> T - 6
        self.conv2 = ConvReluBN(dims=1, in_channels=filters, out_channels=filters, kernel=7, padding=3, norm="scalar")
        self.pool = nn.MaxPool1d(2)
        self.conv3 = ConvReluBN(dims=1, in_channels=filters, out_channels=filters, kernel=7, padding=3, norm="scalar")
        # global max + global mean -> 2F features
        self.head = DenseHead(in_features=2 * filters, n_tags=n_tags, hidden_units=dense_units, dropout=dropout, hidden_bn=True)
        self.filters, self.dense_units = filters, dense_units

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The dense layer's output after its batch norm, (batch, dense_units)."""
        first = self.conv1(features)  # (batch, F, T - 6)
        pooled = self.pool(self.conv2(first) + first)  # (batch, F, (T - 6) // 2)
        deep = self.conv3(pooled) + pooled
        summary = torch.cat([deep.amax(dim=2), deep.mean(dim=2)], dim=1)  # (batch, 2F)
        return self.head.embed(summary)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.head.classify(embedding)

    @property
    def time_ops(self) -> tuple[TimeOp, ...]:
        F = self.filters
        return (
            TimeOp(f"back-end conv1 7xM' ({F})", 7),
            TimeOp(f"back-end conv2 7x{F} + residual", 7, 1, 6),
            TimeOp("back-end max-pool 2", 2, 2),
            TimeOp(f"back-end conv3 7x{F} + residual", 7, 1, 6),
        )
