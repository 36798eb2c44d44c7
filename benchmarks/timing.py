"""The timing loop every benchmark script uses (standard library only: the TensorFlow peer imports it too)."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``action``, after one warm-up call (first-call
    allocations, kernel selection and lazy initialisation are not what is being measured)."""
    action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
