"""The restricted unpickler (study/data/pickles.py): split files that would run code are refused,
naming the file and the global, and nothing runs; every form the MSD and MTT readers accept loads.

Each hostile fixture is first shown to run its code under plain unpickling (a marker file
appears), so a refusal below is a refusal of a live payload.
"""
from __future__ import annotations

import builtins
import codecs
import os
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from study.config import DataConfig
from study.data import msd, mtt
from study.data.pickles import _numpy_module, load_npy, load_pickle
from tests.test_readers import MSD_IDS, write_py2_pickle


multiarray, numeric = _numpy_module("multiarray"), _numpy_module("numeric")


class Hostile:
    """Unpickles to a call of ``function(*args)``, as a crafted split file would."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def payloads(marker: Path) -> dict[str, Hostile]:
    """Each creates ``marker`` when unpickled; keyed by the global the pickle names."""
    return {
        "posix.system": Hostile(os.system, f"touch '{marker}'"),
        # builtins, but not containers or numbers: admitted by name, not by module
        "builtins.exec": Hostile(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "builtins.eval": Hostile(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "io.open": Hostile(builtins.open, str(marker), "w"),  # builtins.open pickles as io.open
    }


def runs_under_plain_pickle(load, marker: Path) -> bool:
    """The fixture is live: plain loading creates the marker (removed again for the real test)."""
    result = load()
    if hasattr(result, "close"):
        result.close()
    made = marker.exists()
    marker.unlink(missing_ok=True)
    return made


@pytest.mark.parametrize("refused", ["posix.system", "builtins.exec", "builtins.eval", "io.open"])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_hostile_pickle_is_refused_naming_file_and_global(tmp_path, refused, protocol):
    marker = tmp_path / "marker"
    path = tmp_path / "filtered_list_train.cP"
    path.write_bytes(pickle.dumps(["TRAAAAK128F9318786", payloads(marker)[refused]], protocol=protocol))
    assert runs_under_plain_pickle(lambda: pickle.loads(path.read_bytes())[1], marker)
    with pytest.raises(ValueError) as error:
        load_pickle(path, encoding="latin1")
    message = str(error.value)
    # pickle writes Python-2 names at protocols 0-2 (__builtin__.exec); either spelling is named
    refused_names = {refused, refused.replace("builtins.", "__builtin__.")}
    assert message.startswith(f"{path}: refused to load ")
    assert any(f" {name} " in message for name in refused_names), message
    assert "\n" not in message
    assert not marker.exists()


def test_codecs_encode_is_admitted_for_latin1_only(tmp_path):
    """Python 3 writes bytes through _codecs.encode(text, 'latin1') at protocols 0-2; no other codec."""
    path = tmp_path / "ids.cP"
    path.write_bytes(pickle.dumps(Hostile(codecs.encode, "TRA", "rot13"), protocol=2))
    assert pickle.loads(path.read_bytes()) == "GEN"  # plain unpickling runs the rot13 codec
    with pytest.raises(ValueError, match=f"^{path}: _codecs.encode with str and 'rot13'; only latin1"):
        load_pickle(path)


def test_hostile_object_npy_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "train.npy"
    np.save(path, np.array(["0\tf/a.mp3", payloads(marker)["builtins.exec"]], dtype=object))
    assert runs_under_plain_pickle(lambda: np.load(path, allow_pickle=True), marker)
    with pytest.raises(ValueError, match=f"^{path}: refused to load builtins.exec from this pickle: only lists"):
        load_npy(path)
    assert not marker.exists()


def test_hostile_plain_pickle_saved_as_npy_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "tags.npy"
    path.write_bytes(pickle.dumps(payloads(marker)["posix.system"], protocol=4))
    with pytest.raises(ValueError, match=f"^{path}: refused to load posix.system"):
        load_npy(path)
    assert not marker.exists()


def test_readers_refuse_hostile_split_files(tmp_path):
    marker = tmp_path / "marker"
    lee = tmp_path / "msd"
    lee.mkdir()
    (lee / "filtered_list_train.cP").write_bytes(pickle.dumps(payloads(marker)["posix.system"], protocol=2))
    write_py2_pickle(lee / "filtered_list_test.cP", [MSD_IDS[0].encode()])
    write_py2_pickle(lee / "msd_id_to_tag_vector.cP", {MSD_IDS[0].encode(): [0] * 50})
    with pytest.raises(ValueError, match="filtered_list_train.cP: refused to load posix.system"):
        msd.load_msd(DataConfig(dataset="msd", data_root=str(lee)))
    sota = tmp_path / "mtt" / "split" / "mtat"
    sota.mkdir(parents=True)
    np.save(sota / "tags.npy", np.array(["guitar", payloads(marker)["builtins.exec"]], dtype=object))
    np.save(sota / "binary.npy", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="tags.npy: refused to load builtins.exec"):
        mtt.load_mtt(DataConfig(dataset="mtt", data_root=str(tmp_path / "mtt"), split_convention="sota"))
    assert not marker.exists()


# ---- what the readers accept still loads ------------------------------------------------------------
def test_python2_pickles_of_ids_and_tag_vectors_load(tmp_path):
    """As cPickle wrote them (protocol 2, byte strings, numpy 1.x's numpy.core names)."""
    ids = tmp_path / "filtered_list_test.cP"
    write_py2_pickle(ids, [i.encode() for i in MSD_IDS[:3]])
    assert pickle.loads(ids.read_bytes(), encoding="bytes") == [i.encode() for i in MSD_IDS[:3]]  # Python 2 str
    assert load_pickle(ids, encoding="latin1") == MSD_IDS[:3]
    vectors = tmp_path / "msd_id_to_tag_vector.cP"
    column = np.arange(50, dtype=np.float32).reshape(50, 1) / 50
    write_py2_pickle(vectors, {b"TRA": column, b"TRB": column.reshape(50), b"TRC": [1, 0] * 25})
    assert b"numpy.core.multiarray\n_reconstruct" in vectors.read_bytes()
    with open(vectors, "rb") as handle, pytest.raises(UnicodeDecodeError):
        pickle.load(handle)  # Python-2-like indeed: array bytes that ASCII decoding refuses
    loaded = load_pickle(vectors, encoding="latin1")
    assert sorted(loaded) == ["TRA", "TRB", "TRC"]
    assert loaded["TRA"].shape == (50, 1) and loaded["TRA"].dtype == np.float32
    np.testing.assert_array_equal(loaded["TRA"], column)
    np.testing.assert_array_equal(loaded["TRB"], column.reshape(50))
    assert loaded["TRC"] == [1, 0] * 25


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("numpy_names", ["numpy._core", "numpy.core"])
def test_python3_pickles_of_arrays_dtypes_and_scalars_load(tmp_path, monkeypatch, protocol, numpy_names):
    """Every protocol (0-2 write bytes through _codecs.encode, 5 arrays through _frombuffer), under
    numpy 2.x and 1.x module names (numpy 1.x's written by renaming the functions' module)."""
    for function in (multiarray._reconstruct, multiarray.scalar, numeric._frombuffer):
        monkeypatch.setattr(function, "__module__", re.sub(r"^numpy\._?core", numpy_names, function.__module__))
    value = {"TRA": np.linspace(0, 1, 50, dtype=np.float32).reshape(50, 1), "TRB": [0.5] * 50,
             "scalar": np.float32(0.25), "dtype": np.dtype("<i8"), "tags": np.array(["rock", "pop"]),
             "records": np.zeros(2, dtype=[("x", "<i4"), ("name", "U3")]), "objects": np.array(["a", 1], dtype=object),
             "others": ({1, 2}, frozenset("ab"), 1 + 2j, None, True, b"\xff\x00", b"", 2**70)}
    path = tmp_path / "value.pkl"
    with warnings.catch_warnings():  # numpy 2 warns that numpy.core is deprecated when pickle checks the name
        warnings.simplefilter("ignore", DeprecationWarning)
        path.write_bytes(pickle.dumps(value, protocol=protocol))
    assert f"{numpy_names}.multiarray".encode() in path.read_bytes()
    loaded = load_pickle(path)
    assert loaded.keys() == value.keys()
    for key in ("TRA", "tags", "records", "objects"):
        assert loaded[key].dtype == value[key].dtype
        np.testing.assert_array_equal(loaded[key], value[key])
    assert loaded["TRB"] == value["TRB"] and loaded["others"] == value["others"]
    assert loaded["scalar"] == value["scalar"] and type(loaded["scalar"]) is np.float32
    assert loaded["dtype"] == np.dtype("<i8")


def test_npy_files_of_every_form_load(tmp_path):
    entries = ["0\tf/a-b-0-29.mp3", "12\tc/é-b-30-59.mp3"]
    objects = tmp_path / "train.npy"
    np.save(objects, np.array(entries, dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(objects)  # an object array indeed: numpy alone will not read it
    loaded = load_npy(objects)
    assert loaded.dtype == object and loaded.tolist() == entries
    strings = tmp_path / "tags.npy"
    np.save(strings, np.array(["rock", "pop"]))
    assert load_npy(strings).tolist() == ["rock", "pop"]
    numbers = tmp_path / "binary.npy"
    matrix = np.eye(3, 50, dtype=np.int64)
    np.save(numbers, matrix)
    assert load_npy(numbers).dtype == np.int64
    np.testing.assert_array_equal(load_npy(numbers), matrix)
    pickled = tmp_path / "valid.npy"  # a plain pickle under .npy, as np.load(allow_pickle=True) read it
    pickled.write_bytes(pickle.dumps(np.array(entries, dtype=object)))
    assert load_npy(pickled).tolist() == entries


def test_a_damaged_pickle_is_named(tmp_path):
    path = tmp_path / "filtered_list_train.cP"
    path.write_bytes(pickle.dumps(list(range(100)), protocol=2)[:40])
    with pytest.raises(ValueError, match=f"^{path}: cannot unpickle"):
        load_pickle(path, encoding="latin1")
