"""Convolution, ReLU, batch norm and max-pool as one CPU operation, a few clips at a time.

Both front-ends end most layers with the same steps on their largest tensors: a convolution,
ReLU, batch norm and a max-pool (the waveform front-end's max-pool 3 over time, the timbral
filters' max over the whole frequency axis; §4, Figure 2).  Run as separate torch operations on a
CPU they make about ten passes over activations of tens of megabytes, far more than the caches
hold, and the max-pool's index bookkeeping is slow.  :func:`conv_norm_pool` computes the same
values with two changes:

- **The pool comes first.**  Batch norm applies ``scale * x + shift`` per channel, and an
  increasing map commutes with a max (``max(a x + b) = a max(x) + b`` for ``a >= 0``; for
  ``a < 0`` the max becomes a min, and ``scale`` has the sign of gamma); ReLU is increasing too.
  So the output is ``scale * pool(relu(z)) + shift``.  The batch statistics still come from the
  whole tensor, as batch norm computes them, and the backward pass is written out: the
  statistics' gradient reaches every element, the pooled gradient only each window's selected
  element (its first maximum, as ``max_pool`` chooses it).
- **A few clips at a time.**  The batch is cut into chunks whose activations fit the CPU's
  caches; each chunk is convolved, rectified, summed into the statistics and pooled while it is
  still in cache, and the backward pass likewise runs the convolution's backward chunk by chunk.
  Evaluation (running statistics: validation, testing, tagging) pools each chunk as soon as it is
  convolved too, so a batch of windows costs no more cache misses than one window.
- **One pass per direction.**  In training, ReLU, the chunk's statistics and the pool (forward) and
  the statistics', pool's and ReLU's gradient terms (backward) are each one compiled loop over the
  convolution's output (:mod:`study.models.kernels`) where numba is installed and ReLU comes first;
  otherwise torch's element-wise operations make the same passes one by one.

Values equal the plain operations up to float rounding (sums in another order).  Gradients do too,
except where rounding inside batch norm made two entries of a window equal in the plain path (it
then routes the gradient to the first of them, this path to the larger input).  Used on CPU only:
on a GPU, and for ``SyncBatchNorm`` (several processes), the plain operations run.
"""
from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CACHE_BYTES = 4 * 2**20  # activations per chunk: measured fastest between 2 and 8 MB on a 2 MB-L2 CPU


# ---- the pools: windows along the last axis, or the whole of one axis ---------------------------
class WindowPool:
    """Max over non-overlapping windows of ``size`` along the last axis (floor): (B, C, T) -> (B, C, T // size)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def max(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool1d(x, self.size)

    def scatter(self, grad: torch.Tensor, x: torch.Tensor, pooled: torch.Tensor, g: torch.Tensor) -> None:
        """Add ``g`` (B, C, L) to ``grad`` at the first position of each window where ``x`` equals ``pooled``."""
        k, end = self.size, pooled.shape[-1] * self.size
        free = None  # windows whose maximum has not been met yet
        for j in range(k):  # window offset j: every k-th element
            hit = x[..., j:end:k] == pooled
            if free is None:
                free = ~hit
            else:
                hit &= free
                free &= ~hit
            grad[..., j:end:k] += g * hit


class AxisPool:
    """Max over the whole of axis ``dim`` (2 or 3) of a (B, C, *, *) map, e.g. over every frequency position."""

    def __init__(self, dim: int = 2) -> None:
        if dim not in (2, 3):
            raise ValueError(f"AxisPool pools axis 2 or 3 of a (batch, channels, *, *) map, got {dim}")
        self.dim = dim

    def max(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=self.dim)

    def scatter(self, grad: torch.Tensor, x: torch.Tensor, pooled: torch.Tensor, g: torch.Tensor) -> None:
        first = x.max(dim=self.dim, keepdim=True).indices  # the first maximum (max's kernel is faster than argmax's)
        grad.scatter_add_(self.dim, first, g.unsqueeze(self.dim))


def _pool(pool, x: torch.Tensor, negative: torch.Tensor | None) -> torch.Tensor:
    """``pool.max`` of ``x``, a min-pool for the channels flagged in ``negative`` (C,) bool."""
    pooled = pool.max(x)
    if negative is not None:
        pooled[:, negative] = -pool.max(-x[:, negative])
    return pooled


def _scatter(pool, grad: torch.Tensor, x: torch.Tensor, pooled: torch.Tensor, g: torch.Tensor,
             negative: torch.Tensor | None) -> None:
    if negative is None:
        pool.scatter(grad, x, pooled, g)
        return
    flipped, signed = x.clone(), pooled.clone()  # a min is the max of the negated values
    flipped[:, negative] = -flipped[:, negative]
    signed[:, negative] = -signed[:, negative]
    pool.scatter(grad, flipped, signed, g)


def _per_channel(values: torch.Tensor, ndim: int) -> torch.Tensor:
    return values.view(1, -1, *([1] * (ndim - 2)))


# ---- the operation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockSpec:
    """What :func:`conv_norm_pool` computes besides its tensors."""

    stride: tuple[int, ...]
    padding: tuple[int, ...]
    eps: float
    momentum: float
    relu_first: bool  # relu -> norm (the paper's order) or norm -> relu (SampleCNN)
    pool: WindowPool | AxisPool | None
    positions: int = 0  # > 0: the output channels are (filters, positions), pooled over positions (banded filters)
    chunk: int = 1  # clips per chunk
    compiled: bool = False  # the element-wise passes as compiled loops (study.models.kernels; ReLU first only)


def _combine(counts: torch.Tensor, means: torch.Tensor, squares: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Groups' counts (k,), per-channel means and squared deviations (k, C) -> the whole's mean and squared
    deviations (C,), in Chan et al.'s way: the groups' own squares plus their means' spread about the mean."""
    n = counts.view(-1, 1)
    mean = (n * means).sum(dim=0) / n.sum()
    return mean, squares.sum(dim=0) + (n * (means - mean).square()).sum(dim=0)


def _convolve(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
    z = torch.ops.aten.convolution(x, weight, bias, list(spec.stride), list(spec.padding), [1] * len(spec.stride),
                                   False, [0] * len(spec.stride), 1)
    if spec.positions:
        z = z.view(z.shape[0], -1, spec.positions, *z.shape[2:])  # (b, filters, positions, time)
    return z


def _channel_sum(t: torch.Tensor) -> torch.Tensor:
    """Per-channel sum of a (B, C, ...) tensor in float64, (C,): contiguous rows summed first, then the rows.

    A reduction over the batch and the trailing axes at once accumulates in the tensor's own
    precision; row by row it stays exact to float32 rounding, as batch norm's own double accumulation.
    """
    return t.reshape(t.shape[0], t.shape[1], -1).sum(dim=-1).double().sum(dim=0)


class _ConvNormPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, running_mean, running_var, spec: BlockSpec):
        negative = gamma < 0
        negative = negative if bool(negative.any()) else None
        units, pooled, counts, means, squares = [], [], [], [], []
        indices = []
        for start in range(0, x.shape[0], spec.chunk):  # each chunk convolved, rectified, summed, pooled in cache
            u = _convolve(x[start:start + spec.chunk], weight, bias, spec)
            size = u.numel() // u.shape[1]
            if spec.compiled:  # one compiled pass: ReLU, statistics, pool and where each window's pick was
                chunk_mean, spread, piece, index = _compiled_forward(u, spec.pool, negative)
                squares.append(spread)
                indices.append(index)
            else:
                if spec.relu_first:
                    u = u.relu_()
                chunk_mean = _channel_sum(u) / size
                # squared deviations from the chunk's own mean: no cancellation when the mean dwarfs the spread
                # (sums of squares minus the squared mean lost 1e-3 of a short training run's loss in float32)
                centred = u - _per_channel(chunk_mean.to(u.dtype), u.dim())
                squares.append(_channel_sum(centred.square_()))
                piece = _pool(spec.pool, u, negative) if spec.pool is not None else None
            means.append(chunk_mean)
            counts.append(size)
            units.append(u)
            if spec.pool is not None:
                pooled.append(piece)
        count = sum(counts)
        mean64, spread64 = _combine(torch.tensor(counts, dtype=torch.float64), torch.stack(means), torch.stack(squares))
        var64 = spread64 / count
        mean, invstd = mean64.to(x.dtype), torch.rsqrt(var64 + spec.eps).to(x.dtype)
        scale = gamma * invstd
        pieces = pooled if spec.pool is not None else units
        out = torch.empty((x.shape[0], *pieces[0].shape[1:]), dtype=x.dtype)
        start = 0
        for piece in pieces:  # (u - mean) * scale + beta, centred first as batch norm does
            rows = out[start:start + piece.shape[0]]
            if spec.compiled:
                _compiled_normalise(piece, rows, mean, scale, beta)
            else:
                torch.sub(piece, _per_channel(mean, piece.dim()), out=rows)
                rows.mul_(_per_channel(scale, piece.dim())).add_(_per_channel(beta, piece.dim()))
            if not spec.relu_first:
                rows.relu_()
            start += piece.shape[0]
        if running_mean is not None:
            running_mean.mul_(1 - spec.momentum).add_(mean64.to(running_mean.dtype), alpha=spec.momentum)
            unbiased = var64 * (count / max(count - 1, 1))
            running_var.mul_(1 - spec.momentum).add_(unbiased.to(running_var.dtype), alpha=spec.momentum)
        ctx.spec, ctx.negative, ctx.count, ctx.n_pooled, ctx.n_indices = spec, negative, count, len(pooled), len(indices)
        ctx.save_for_backward(x, weight, gamma, mean, invstd, out if not spec.relu_first else None, *pooled, *indices,
                              *units)
        return out

    @staticmethod
    def backward(ctx, g):
        x, weight, gamma, mean, invstd, out, *saved = ctx.saved_tensors
        pooled, indices = saved[:ctx.n_pooled], saved[ctx.n_pooled:ctx.n_pooled + ctx.n_indices]
        units = saved[ctx.n_pooled + ctx.n_indices:]
        spec, negative = ctx.spec, ctx.negative
        g = g.contiguous()
        if not spec.relu_first:
            g = g * (out > 0)
        rows = [slice(index * spec.chunk, index * spec.chunk + u.shape[0]) for index, u in enumerate(units)]
        # sums of g and of g * xhat over what batch norm saw (the pooled entries, or every one)
        seen = pooled if spec.pool is not None else units
        if spec.compiled:
            grad_beta, centred_dot = _compiled_gradient_sums(g, rows, seen, mean)
            grad_beta = grad_beta.to(g.dtype)
        else:
            grad_beta = _channel_sum(g).to(g.dtype)
            centred_dot = sum(_channel_sum(g[chunk] * (piece - _per_channel(mean, piece.dim())))
                              for chunk, piece in zip(rows, seen))
        grad_gamma = invstd * centred_dot.to(g.dtype)
        # every element moves the batch statistics: -(gamma invstd / N)(dbeta + xhat dgamma), with
        # xhat = (u - mean) invstd, applied to the centred u so nothing large cancels
        a = _per_channel(-gamma * invstd.square() * grad_gamma / ctx.count, g.dim())
        b = _per_channel(-gamma * invstd * grad_beta / ctx.count, g.dim())
        scale = _per_channel(gamma * invstd, g.dim())  # the pooled (or every) element's own term
        need_input = ctx.needs_input_grad[0]
        grad_x = torch.empty_like(x) if need_input else None
        grad_weight, grad_bias = torch.zeros_like(weight), torch.zeros(weight.shape[0], dtype=weight.dtype)
        offset = b - a * mean.view(a.shape)  # (u - mean) a + b = u a + offset
        for index, (chunk, u) in enumerate(zip(rows, units)):
            if spec.compiled:
                grad_u = _compiled_backward(u, spec.pool, indices[index] if indices else None, g[chunk],
                                            scale.flatten(), a.flatten(), offset.flatten())
            else:
                view = (1, -1, *([1] * (u.dim() - 2)))
                grad_u = torch.addcmul(offset.view(view), u, a.view(view))
                if spec.pool is not None:
                    _scatter(spec.pool, grad_u, u, pooled[index], g[chunk] * scale, negative)
                else:
                    grad_u.addcmul_(g[chunk], scale)
                if spec.relu_first:
                    grad_u = torch.ops.aten.threshold_backward(grad_u, u, 0)
            if spec.positions:
                grad_u = grad_u.reshape(grad_u.shape[0], -1, *grad_u.shape[3:])  # (b, filters x positions, time)
            gx, gw, gb = torch.ops.aten.convolution_backward(
                grad_u, x[chunk], weight, [weight.shape[0]], list(spec.stride), list(spec.padding),
                [1] * len(spec.stride), False, [0] * len(spec.stride), 1, [need_input, True, True])
            if need_input:
                grad_x[chunk] = gx
            grad_weight += gw
            grad_bias += gb
        return grad_x, grad_weight, grad_bias, grad_gamma, grad_beta, None, None, None


# ---- the compiled passes (study.models.kernels) ----------------------------------------------------
NUMBA = importlib.util.find_spec("numba") is not None


def _kernels():
    """:mod:`study.models.kernels`, imported on first use (numba takes a few tenths of a second to import,
    which evaluation and tagging, using no compiled loop, need not pay), its loops set to torch's threads.

    numba's OpenMP layer shares torch's OpenMP runtime, and launching its threads sets that runtime's
    thread count to numba's maximum (every core): a batch job given one thread would then run torch on
    every core too, and two jobs on two cores would each spin-wait for the other's.  So torch's count
    is put back whenever the launch changed it.
    """
    from study.models import kernels

    threads = torch.get_num_threads()
    kernels.set_threads(threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return kernels


def _layout(t: torch.Tensor, pool: WindowPool | AxisPool | None) -> tuple[str, np.ndarray, int]:
    """A block's (clips, channels, ...) tensor as the kernels' rows: their layout, the array, the window."""
    if pool is None:
        return "plain", _rows(t), 0
    if isinstance(pool, WindowPool):
        return "window", _rows(t), pool.size
    if pool.dim == t.dim() - 1:  # a max over the last axis: windows as wide as that axis
        return "window", _rows(t), t.shape[-1]
    return "middle", t.view(t.shape[0] * t.shape[1], t.shape[2], -1).numpy(), 0


def _per_row(values: torch.Tensor, clips: int, dtype: torch.dtype) -> np.ndarray:
    return values.detach().to(dtype).repeat(clips).numpy()


def _rows(t: torch.Tensor) -> np.ndarray:
    """(clips, channels, ...) as (clips x channels, ...) rows: a view, never a copy (some loops write in place)."""
    return t.view(t.shape[0] * t.shape[1], -1).numpy()


def _compiled_normalise(piece: torch.Tensor, out: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor,
                        shift: torch.Tensor) -> None:
    """``out = (piece - mean) scale + shift`` per channel, one pass."""
    kernels = _kernels()
    clips = piece.shape[0]
    kernels.normalise(_rows(piece), *(_per_row(v, clips, piece.dtype) for v in (mean, scale, shift)), _rows(out))


def _compiled_gradient_sums(g: torch.Tensor, chunks: list[slice], seen, mean: torch.Tensor):
    """Per channel, in float64: the sums of ``g`` and of ``g (seen - mean)`` over every chunk, one pass each."""
    kernels = _kernels()
    total = dot = 0.0
    for chunk, piece in zip(chunks, seen):
        sums, centred = np.empty(piece.shape[0] * piece.shape[1]), np.empty(piece.shape[0] * piece.shape[1])
        kernels.gradient_sums(_rows(g[chunk]), _rows(piece), _per_row(mean, piece.shape[0], piece.dtype), sums, centred)
        total = total + torch.from_numpy(sums).view(piece.shape[0], -1).sum(dim=0)
        dot = dot + torch.from_numpy(centred).view(piece.shape[0], -1).sum(dim=0)
    return total, dot


def _compiled_forward(u: torch.Tensor, pool, negative: torch.Tensor | None):
    """ReLU ``u`` in place and pool it in one pass: the chunk's per-channel mean and squared deviations
    (float64), the pooled map (clips, channels, ...) and which element of each window was picked."""
    kernels = _kernels()
    kind, x, k = _layout(u, pool)
    clips, channels = u.shape[:2]
    sums, spreads = np.empty(x.shape[0]), np.empty(x.shape[0])
    lowest = np.zeros(x.shape[0], dtype=bool) if negative is None else np.tile(negative.numpy(), clips)
    pooled = index = None
    if kind == "plain":
        kernels.plain_forward(x, sums, spreads)
    elif kind == "window":
        pooled = np.empty((x.shape[0], x.shape[1] // k), dtype=x.dtype)
        index = np.empty(pooled.shape, dtype=kernels.index_dtype(k))
        kernels.window_forward(x, k, lowest, sums, spreads, pooled, index)
    else:
        pooled = np.empty((x.shape[0], x.shape[2]), dtype=x.dtype)
        index = np.empty(pooled.shape, dtype=kernels.index_dtype(x.shape[1]))
        kernels.middle_forward(x, lowest, sums, spreads, pooled, index)
    per_row = x[0].size  # each row is one group of the chunk's statistics
    mean, spread = _combine(torch.full((clips,), float(per_row), dtype=torch.float64),
                            torch.from_numpy(sums).view(clips, channels) / per_row,
                            torch.from_numpy(spreads).view(clips, channels))
    if pooled is None:
        return mean, spread, None, None
    return mean, spread, torch.from_numpy(pooled).view(clips, channels, -1), torch.from_numpy(index)


def _compiled_backward(u: torch.Tensor, pool, index: torch.Tensor | None, g: torch.Tensor, scale: torch.Tensor,
                       a: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """The gradient at the ReLU's input of one chunk: ``u a + offset`` for every element (the batch
    statistics), plus ``g scale`` at each window's pick, where ReLU passed it; per-channel coefficients."""
    kernels = _kernels()
    kind, x, k = _layout(u, pool)
    grad = torch.empty_like(u)
    clips = u.shape[0]
    s, a, offset = (_per_row(values, clips, u.dtype) for values in (scale, a, offset))
    flat_g = _rows(g.contiguous())
    out = _layout(grad, pool)[1]
    if kind == "plain":
        kernels.plain_backward(x, flat_g, s, a, offset, out)
    elif kind == "window":
        kernels.window_backward(x, k, index.numpy(), flat_g, s, a, offset, out)
    else:
        kernels.middle_backward(x, index.numpy(), flat_g, s, a, offset, out)
    return grad


def chunk_size(clip_bytes: int) -> int:
    """Clips per chunk so that one chunk's activations are about :data:`CACHE_BYTES`."""
    return max(1, CACHE_BYTES // max(clip_bytes, 1))


_ENABLED = [True]
_COMPILED = [True]


@contextmanager
def _switched_off(switch: list[bool]) -> Iterator[None]:
    switch.append(False)
    try:
        yield
    finally:
        switch.pop()


def plain_operations():
    """Run the plain torch operations instead of the fused path (tests and benchmarks compare the two)."""
    return _switched_off(_ENABLED)


def torch_passes():
    """Keep the fused path but make its element-wise passes with torch's operations, not the compiled loops."""
    return _switched_off(_COMPILED)


def fast_path(x: torch.Tensor, norm: nn.Module) -> bool:
    """The fused path serves CPU tensors in float32/float64 with per-channel affine batch norm."""
    return (_ENABLED[-1] and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.affine
            and not isinstance(norm, nn.SyncBatchNorm))


def conv_norm_pool(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, norm: nn.modules.batchnorm._BatchNorm, *,
                   stride: tuple[int, ...], padding: tuple[int, ...], relu_first: bool = True,
                   pool: WindowPool | AxisPool | None = None, positions: int = 0) -> torch.Tensor:
    """``pool(norm(relu(conv(x))))`` (or ``pool(relu(norm(conv(x))))``) in one pass per chunk of clips.

    ``weight``/``bias`` are the convolution's (any number of spatial dims); ``norm`` a per-channel
    batch norm module whose parameters, running statistics and mode are used as its own forward
    would; ``positions`` > 0 views the output channels as (filters, positions) and needs an
    :class:`AxisPool` over axis 2.  See the module docstring for what is computed how.
    """
    training = norm.training or not norm.track_running_stats
    momentum = norm.momentum
    if norm.training and norm.track_running_stats:
        norm.num_batches_tracked.add_(1)
        if momentum is None:  # cumulative average, as torch's batch norm
            momentum = 1.0 / float(norm.num_batches_tracked)
    out_channels = weight.shape[0] // max(positions, 1)
    spatial = [max(1, (n + 2 * p - k) // s + 1)
               for n, p, k, s in zip(x.shape[2:], padding, weight.shape[2:], stride)]
    clip_bytes = x.element_size() * weight.shape[0] * int(torch.tensor(spatial).prod())
    spec = BlockSpec(stride=tuple(stride), padding=tuple(padding), eps=norm.eps, momentum=momentum or 0.0,
                     relu_first=relu_first, pool=pool, positions=positions, chunk=chunk_size(clip_bytes),
                     compiled=NUMBA and _COMPILED[-1] and relu_first and training)
    if training:
        running = (norm.running_mean, norm.running_var) if norm.training and norm.track_running_stats else (None, None)
        return _ConvNormPool.apply(x, weight, bias, norm.weight, norm.bias, *running, spec)
    return _evaluate(x, weight, bias, norm, spec)


def _evaluate(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, norm: nn.modules.batchnorm._BatchNorm,
              spec: BlockSpec) -> torch.Tensor:
    """The block with the running statistics: a fixed ``scale * x + shift``, so the pool goes first.

    The sign of each channel's scale is folded into its convolution, ``v = sign * z``; then one max
    of ``v`` serves every channel, and ReLU moves past it: ``max(relu(z)) = max(max(v), 0)`` where
    the scale is positive, ``-min(relu(z)) = min(max(v), 0)`` where it is negative.  One pass over
    the convolution's output, none of them elementwise.
    """
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    shift = norm.bias - norm.running_mean * scale
    positive = scale >= 0
    sign = torch.where(positive, 1.0, -1.0).to(weight.dtype)
    per_output = sign.repeat_interleave(spec.positions) if spec.positions else sign
    weight, bias = weight * per_output.view(-1, *([1] * (weight.dim() - 1))), bias * per_output
    if spec.pool is None:
        pooled = _convolve(x, weight, bias, spec)
    else:  # a few clips at a time, each chunk's convolution pooled while it is still in cache
        pooled = torch.cat([spec.pool.max(_convolve(x[start:start + spec.chunk], weight, bias, spec))
                            for start in range(0, x.shape[0], spec.chunk)])
    scoring = not torch.is_grad_enabled()  # nothing to differentiate: each pass in place, on the tensor pooled
    shift = _per_channel(shift, pooled.dim())
    if spec.relu_first:  # sign * relu, past the max: v kept in [0, inf) where the scale is positive, (-inf, 0] where not,
        # as relu(sign v) sign; the sign goes into the scale (a clamp with per-channel bounds costs five such passes)
        sign = _per_channel(sign.to(pooled.dtype), pooled.dim())
        scale = _per_channel(scale, pooled.dim())  # sign |scale|
        return pooled.mul_(sign).relu_().mul_(scale).add_(shift) if scoring else torch.relu(pooled * sign) * scale + shift
    scale = _per_channel(scale.abs(), pooled.dim())
    return pooled.mul_(scale).add_(shift).relu_() if scoring else torch.relu(pooled * scale + shift)


__all__ = ["AxisPool", "WindowPool", "conv_norm_pool", "fast_path", "plain_operations", "torch_passes"]
