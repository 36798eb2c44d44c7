"""Progress bars on a terminal only.

A bar redraws itself with carriage returns; in a log file, an executed notebook or a batch run's
output (no terminal) that is thousands of lines of noise.  Every bar in the package comes from
:func:`progress_bar`, which draws only when standard error is a terminal; the lines that matter
(each epoch's metrics, skipped tracks, summaries) are printed either way.
"""
from __future__ import annotations

import sys
from typing import Any, Iterable

from tqdm import tqdm


def progress_bar(iterable: Iterable | None = None, *, show: bool = True, **options: Any) -> tqdm:
    """``tqdm(iterable, **options)`` writing to standard error, drawn only when ``show`` and that is a terminal."""
    stream = sys.stderr
    drawn = show and getattr(stream, "isatty", lambda: False)()
    return tqdm(iterable, disable=not drawn, file=stream, **options)
