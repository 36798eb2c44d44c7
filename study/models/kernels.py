"""Compiled loops for the element-wise part of :mod:`study.models.fused`, one pass per tensor.

After each convolution the fused block still makes several passes over the convolution's output
with torch's element-wise operations: ReLU, the batch statistics (a sum, then the squared
deviations), the max-pool, and in the backward pass the statistics' term, the pooled element's
term and ReLU's mask, each a separate pass over tens of megabytes.  On a CPU these passes, not the
convolutions, took most of a training step of the small default networks.  The loops below make
each of those steps one pass per row of the convolution's output (a row is one clip's channel, so
it is in cache while it is worked on): ReLU, statistics and pool forward, the gradient's three terms
backward, plus batch norm's affine map and its two gradient sums over the pooled map.  numba
compiles them; rows run in parallel on as many threads as torch uses.  Windows of 3 (the waveform
front-end's pool) are unrolled into compare-and-select, because a loop that branches on ReLU's
noisy output mispredicts about every other window.

The values are the torch path's up to the order of float sums: the statistics are summed in
float64 (within a row, then combined over rows and chunks as Chan et al. combine variances), the
pool keeps the first of equal maxima as ``max_pool`` does, and where a batch-norm scale is negative
a row's window takes its minimum instead (see :mod:`study.models.fused`).

Three layouts cover every pooled block (``x`` is the ReLU input, each row one clip's channel):

- ``plain``: (rows, n), no pool;
- ``window``: (rows, n) pooled over non-overlapping windows of ``k`` along n (floor), which is also
  a max over the last axis of a (rows, positions, k) map;
- ``middle``: (rows, positions, n) pooled over the positions (the banded timbral filters' max over
  frequency).

numba is a dependency; where it is missing anyway, :mod:`study.models.fused` never imports this
module and makes the same passes with torch's operations.  numba compiles each loop on its first
call in a process, for each dtype, and caches the machine code beside this file (a few seconds, once).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

FAST = {"reassoc", "contract"}  # lets the float64 sums vectorise; no assumption about NaN or infinity


def set_threads(threads: int) -> None:
    """Use ``threads`` (at most numba's own maximum) for the parallel loops, as torch uses its own."""
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


@njit(cache=True, fastmath=FAST)
def _rectify_and_moments(row, sums, squares, r):
    """ReLU ``row`` in place; its sum and its sum of squared deviations from its own mean, in float64."""
    total = 0.0
    for t in range(row.size):
        v = row[t]
        if v < 0:  # a NaN stays a NaN, as in torch's ReLU
            v = 0.0
        row[t] = v
        total += v
    mean = total / row.size
    spread = 0.0
    for t in range(row.size):
        d = row[t] - mean
        spread += d * d
    sums[r] = total
    squares[r] = spread


@njit(parallel=True, cache=True, fastmath=FAST)
def plain_forward(x, sums, squares):
    for r in prange(x.shape[0]):
        _rectify_and_moments(x[r], sums, squares, r)


@njit(cache=True, fastmath=FAST)
def _pool_threes(row, sign, pooled, index):
    """Windows of 3, unrolled: compare-and-select, no branch to mispredict on ReLU's noisy output."""
    for w in range(pooled.size):
        t = 3 * w
        v0, v1, v2 = row[t], row[t + 1], row[t + 2]
        second = v1 * sign > v0 * sign
        best = v1 if second else v0
        third = v2 * sign > best * sign
        pooled[w] = v2 if third else best
        index[w] = 2 if third else (1 if second else 0)


@njit(parallel=True, cache=True, fastmath=FAST)
def window_forward(x, k, negative, sums, squares, pooled, index):
    for r in prange(x.shape[0]):
        row = x[r]
        _rectify_and_moments(row, sums, squares, r)
        sign = -1.0 if negative[r] else 1.0  # a min is the max of the negated values
        if k == 3:  # the waveform front-end's and SampleCNN's pool
            _pool_threes(row, sign, pooled[r], index[r])
            continue
        for w in range(pooled.shape[1]):  # wide windows (a whole axis): the best changes rarely
            start = w * k
            best = row[start]
            at = 0
            for j in range(1, k):
                v = row[start + j]
                if v * sign > best * sign:
                    best = v
                    at = j
            pooled[r, w] = best
            index[r, w] = at


@njit(parallel=True, cache=True, fastmath=FAST)
def middle_forward(x, negative, sums, squares, pooled, index):
    for r in prange(x.shape[0]):
        block = x[r]
        _rectify_and_moments(block.reshape(-1), sums, squares, r)
        lowest = negative[r]
        for i in range(block.shape[1]):
            pooled[r, i] = block[0, i]
            index[r, i] = 0
        for p in range(1, block.shape[0]):
            for i in range(block.shape[1]):
                v = block[p, i]
                if (v < pooled[r, i]) if lowest else (v > pooled[r, i]):
                    pooled[r, i] = v
                    index[r, i] = p


@njit(cache=True, fastmath=FAST)
def _statistics_term(u, a, c, grad):
    """Every element's share of the batch statistics' gradient, ``a u + c``, where ReLU passed it."""
    for t in range(u.size):
        v = u[t]
        grad[t] = a * v + c if v > 0 else 0.0


# Backward: ``g`` is the gradient of the block's output per pooled (or every) element and ``s`` each
# row's batch-norm scale; ``a``, ``c`` each row's statistics coefficients (see fused.py).
@njit(parallel=True, cache=True, fastmath=FAST)
def plain_backward(u, g, s, a, c, grad):
    for r in prange(u.shape[0]):
        for t in range(u.shape[1]):
            v = u[r, t]
            grad[r, t] = a[r] * v + c[r] + g[r, t] * s[r] if v > 0 else 0.0


@njit(cache=True, fastmath=FAST)
def _threes_backward(u, index, g, s, a, c, grad):
    """:func:`window_backward` for windows of 3, unrolled: every element written once, in order."""
    for w in range(index.size):
        t = 3 * w
        picked = g[w] * s
        at = index[w]
        for j in range(3):
            v = u[t + j]
            value = a * v + c + (picked if at == j else 0.0)
            grad[t + j] = value if v > 0 else 0.0
    for t in range(3 * index.size, u.size):  # the tail no window covers: statistics only
        v = u[t]
        grad[t] = a * v + c if v > 0 else 0.0


@njit(parallel=True, cache=True, fastmath=FAST)
def window_backward(u, k, index, g, s, a, c, grad):
    for r in prange(u.shape[0]):
        if k == 3:
            _threes_backward(u[r], index[r], g[r], s[r], a[r], c[r], grad[r])
            continue
        _statistics_term(u[r], a[r], c[r], grad[r])
        for w in range(index.shape[1]):
            t = w * k + index[r, w]
            if u[r, t] > 0:
                grad[r, t] += g[r, w] * s[r]


@njit(parallel=True, cache=True, fastmath=FAST)
def middle_backward(u, index, g, s, a, c, grad):
    for r in prange(u.shape[0]):
        _statistics_term(u[r].reshape(-1), a[r], c[r], grad[r].reshape(-1))
        for i in range(index.shape[1]):
            p = index[r, i]
            if u[r, p, i] > 0:
                grad[r, p, i] += g[r, i] * s[r]


@njit(parallel=True, cache=True, fastmath=FAST)
def normalise(x, mean, scale, shift, out):
    """Batch norm's affine map per row, ``(x - mean) scale + shift``, centred first as torch's batch norm."""
    for r in prange(x.shape[0]):
        for t in range(x.shape[1]):
            out[r, t] = (x[r, t] - mean[r]) * scale[r] + shift[r]


@njit(parallel=True, cache=True, fastmath=FAST)
def gradient_sums(g, x, mean, sums, centred):
    """Per row, in float64, the sums of ``g`` and of ``g (x - mean)``: batch norm's shift and scale gradients."""
    for r in prange(g.shape[0]):
        total = 0.0
        dot = 0.0
        for t in range(g.shape[1]):
            v = g[r, t]
            total += v
            dot += v * (x[r, t] - mean[r])
        sums[r] = total
        centred[r] = dot


def index_dtype(positions: int) -> np.dtype:
    """The smallest integer type that numbers ``positions`` window positions."""
    return np.dtype(np.int8) if positions <= 127 else np.dtype(np.int32)
