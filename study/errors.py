"""Mistakes the user can fix, told apart from bugs.

A user's mistake (an unknown name, a missing folder, a value of the wrong type) is reported by
the ``study`` command as one line, ``study <command>: error: <what> — <what to do>``, with exit
status 2; a bug keeps its traceback.  Validation raises :class:`UserError`, or a ``ValueError`` /
``FileNotFoundError`` with a message from the package's own code.  The package raises those only on
purpose, with a message for the user (asserts guard its invariants), so they are the user's to
fix; the same types raised inside a library (numpy, torch) are bugs.
"""
from __future__ import annotations

import traceback
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# raised on purpose by the package's validation; from inside a library they mean a bug
RAISED_FOR_THE_USER = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
SEPARATOR = " — "  # between what went wrong and what to do


class UserError(ValueError):
    """A mistake the user can fix; the message says what is wrong and, after ' — ', what to do."""


def is_user_error(error: BaseException) -> bool:
    """A UserError, or one of RAISED_FOR_THE_USER raised by the package's own code (not inside a library)."""
    if isinstance(error, UserError):
        return True
    if not isinstance(error, RAISED_FOR_THE_USER):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(PACKAGE_DIR)


def user_message(error: BaseException, command: str) -> str:
    """``<what> — <what to do>`` on one line; a message without advice gets the command's help as advice."""
    what = " ".join(str(error).split()) or type(error).__name__
    if SEPARATOR in what:
        return what
    if isinstance(error, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return f"{what}{SEPARATOR}check the path"
    if isinstance(error, PermissionError):
        return f"{what}{SEPARATOR}check the folder's permissions or choose another"
    return f"{what}{SEPARATOR}see `study {command} --help`"
