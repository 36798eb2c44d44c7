"""Reading the pickles inside dataset files without letting them run code.

Unpickling calls whatever function a pickle names, so a split file from a stranger (the Lee
split's ``.cP`` lists, the sota repository's object ``.npy`` arrays) could run any code on load.
These files only hold lists, dicts, strings, numbers and numpy arrays, so the unpickler here
admits the few globals those need and refuses every other one, naming the file and the global.
"""
from __future__ import annotations

import _compat_pickle
import builtins
import codecs
import functools
import importlib
import pickle
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

ALLOWED = "only lists, dicts, strings, numbers and numpy arrays are read"
# Python 3 writes these through REDUCE at protocols 0-2 (set, frozenset, complex, empty bytes);
# calling them on already-checked values runs no code of the file's choosing.
BUILTINS = ("list", "dict", "tuple", "set", "frozenset", "str", "bytes", "int", "float", "bool", "complex")


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside the allowed few."""


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as Python 3 writes bytes at protocols 0-2: latin1 only, no other codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):  # no codec lookup, no import
        raise RefusedGlobal(f"_codecs.encode with {type(text).__name__} and {encoding!r}; only latin1 text is read")
    return codecs.encode(text, encoding, errors)


def _numpy_module(name: str):
    """numpy 2's ``numpy._core.<name>``, else numpy 1's ``numpy.core.<name>``."""
    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{name}")


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], object]:
    """(module, name) -> object for what numpy arrays, dtypes and scalars pickle to, under the
    numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) names alike, and the plain builtins."""
    multiarray, numeric = _numpy_module("multiarray"), _numpy_module("numeric")
    table = {("builtins", name): getattr(builtins, name) for name in BUILTINS}
    table[("_codecs", "encode")] = _latin1_encode
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct  # arrays, protocols 0-4
        table[(f"{core}.multiarray", "scalar")] = multiarray.scalar  # numpy scalars
        table[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # arrays, protocol 5
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of ``_allowed_globals``."""

    def find_class(self, module: str, name: str):
        # Python 2's names (__builtin__.set -> builtins.set) as the default find_class maps them
        wanted = _compat_pickle.NAME_MAPPING.get((module, name))
        wanted = wanted or (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
        found = _allowed_globals().get(wanted)
        if found is None:
            raise RefusedGlobal(f"refused to load {module}.{name} from this pickle: {ALLOWED}")
        return found


def _unpickle(handle, path: Path, encoding: str):
    try:
        return RestrictedUnpickler(handle, encoding=encoding).load()
    except RefusedGlobal as error:
        raise ValueError(f"{path}: {error}") from None
    except Exception as error:
        raise ValueError(f"{path}: cannot unpickle ({type(error).__name__}: {error})") from None


def load_pickle(path: Path, *, encoding: str = "ASCII"):
    """A pickle file read with the restricted unpickler; Python 2 files need ``encoding='latin1'``."""
    with open(path, "rb") as handle:
        return _unpickle(handle, Path(path), encoding)


def load_npy(path: Path, *, encoding: str = "latin1"):
    """A ``.npy`` array as ``np.load`` reads it, without ``allow_pickle=True``: an object array's
    pickled payload (and a plain pickle saved as .npy) goes through the restricted unpickler.
    ``encoding`` decodes Python 2 strings in such payloads; latin1 reads every byte."""
    path = Path(path)
    with open(path, "rb") as handle:
        if handle.read(len(npy_format.MAGIC_PREFIX)) != npy_format.MAGIC_PREFIX:
            handle.seek(0)  # np.load(allow_pickle=True) read any pickle; so do we, restricted
            return _unpickle(handle, path, encoding)
        handle.seek(0)
        version = npy_format.read_magic(handle)
        read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        _shape, _fortran_order, dtype = read_header(handle)
        if not dtype.hasobject:
            handle.seek(0)
            return npy_format.read_array(handle, allow_pickle=False)
        return _unpickle(handle, path, encoding)  # the header is followed by the array's pickle
