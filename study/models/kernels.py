"""Compiled loops for the element-wise part of :mod:`study.models.fused`, one pass per tensor.

After each convolution the fused block still makes several passes over the convolution's output
with torch's element-wise operations: ReLU, the batch statistics (a sum, then the squared
deviations), the max-pool, and in the backward pass the statistics' term, the pooled element's
term and ReLU's mask, each a separate pass over tens of megabytes.  On a CPU these passes, not the
convolutions, took most of a training step of the small default networks.  The loops below do
each direction in one pass per row of the convolution's output (a row is one clip's channel, so it
is in cache while it is worked on), compiled by numba; rows run in parallel on torch's threads.

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

Without numba (it is a dependency, but a checkout may lack it) ``AVAILABLE`` is False and the
fused block uses torch's operations instead.
"""
from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - numba is a declared dependency
    numba = None

AVAILABLE = numba is not None
FAST = {"reassoc", "contract"}  # lets the float64 sums vectorise; no assumption about NaN or infinity


def set_threads(threads: int) -> None:
    """Use ``threads`` (at most numba's own maximum) for the parallel loops, as torch uses its own."""
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


if AVAILABLE:
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

    @njit(parallel=True, cache=True, fastmath=FAST)
    def window_forward(x, k, negative, sums, squares, pooled, index):
        for r in prange(x.shape[0]):
            row = x[r]
            _rectify_and_moments(row, sums, squares, r)
            lowest = negative[r]
            for w in range(pooled.shape[1]):
                start = w * k
                best = row[start]
                at = 0
                for j in range(1, k):
                    v = row[start + j]
                    if (v < best) if lowest else (v > best):
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

    @njit(parallel=True, cache=True, fastmath=FAST)
    def window_backward(u, k, index, g, s, a, c, grad):
        for r in prange(u.shape[0]):
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


def index_dtype(positions: int) -> np.dtype:
    """The smallest integer type that numbers ``positions`` window positions."""
    return np.dtype(np.int8) if positions <= 127 else np.dtype(np.int32)
