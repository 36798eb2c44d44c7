"""Random numbers keyed by (seed, key, stream name), identical on every machine.

A clip's tags must be computable for a million clips at once and for one clip alone, with the
same result.  A per-clip ``numpy.random.Generator`` cannot be vectorised, so the plan draws
its numbers from a counter-based hash (SplitMix64's finaliser) of the seed, the key (a clip
index or an artist's first clip) and a stream name: integer arithmetic only, so every platform
gets the same bits.
"""
from __future__ import annotations

import zlib

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_KEY_MULT = np.uint64(0xD1B54A32D192ED03)


def _mix_int(x: int) -> int:
    """SplitMix64 finaliser on a Python int (used for the per-stream offset)."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class Draws:
    """Uniform numbers in [0, 1) for each key, one independent stream per name."""

    def __init__(self, seed: int, keys: np.ndarray) -> None:
        if seed < 0:
            raise ValueError(f"corpus seed must be >= 0, got {seed}")
        self.seed = int(seed)
        self.keys = np.asarray(keys, dtype=np.int64).astype(np.uint64)

    def uniform(self, stream: str) -> np.ndarray:
        offset = _mix_int((self.seed * _GOLDEN + zlib.crc32(stream.encode())) & _MASK)
        z = _mix(self.keys * _KEY_MULT + np.uint64(offset))
        return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def between(self, stream: str, low, high) -> np.ndarray:
        return low + (high - low) * self.uniform(stream)

    def bernoulli(self, stream: str, p) -> np.ndarray:
        return self.uniform(stream) < p

    def choice(self, stream: str, probs: np.ndarray) -> np.ndarray:
        """Index drawn from each row of ``probs`` (n, k) (or one shared row (k,)); rows need not sum to 1."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim == 1:
            probs = np.broadcast_to(probs, (len(self.keys), len(probs)))
        cumulative = np.cumsum(probs, axis=1)
        threshold = self.uniform(stream) * cumulative[:, -1]
        return np.minimum((threshold[:, None] >= cumulative).sum(axis=1), probs.shape[1] - 1)
