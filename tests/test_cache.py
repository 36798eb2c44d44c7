"""The audio cache: exact round trip, resumable builds, settings checks, failed tracks reported."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from study.audio import AudioError, load_audio
from study.config import AudioConfig, DataConfig, RunConfig
from study.data.cache import (FAILED_FILE, INDEX_FILE, SAMPLES_FILE, AudioCache, CacheMismatchError,
                              cache_settings, ensure_cache, wait_for_cache)
from study.data.collection import Collection

REPO = Path(__file__).resolve().parents[1]


# ---- a tiny collection of tones -----------------------------------------------------------
def tone(track_id: str) -> np.ndarray:
    """A different length and pitch per track: 0.25-0.6 s at 16 kHz."""
    k = int(track_id[1:])
    t = np.arange(4000 + 500 * k) / 16000
    return (0.5 * np.sin(2 * np.pi * (110 + 37 * k) * t)).astype(np.float32)


class ToneLoader:
    """Picklable loader; ``fail`` ids raise like an undecodable file; ``log`` records each decode."""

    def __init__(self, fail: dict[str, type] | None = None, log: Path | None = None, interrupt_at: int = 0):
        self.fail = fail or {}
        self.log = log
        self.interrupt_at = interrupt_at
        self.calls = 0

    def __call__(self, track_id: str, row: pd.Series) -> np.ndarray:
        self.calls += 1
        if self.interrupt_at and self.calls == self.interrupt_at:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during this decode
        if self.log is not None:
            with open(self.log, "a") as log:
                log.write(track_id + "\n")
        if track_id in self.fail:
            kind = self.fail[track_id]
            if kind is AudioError:
                raise AudioError(f"{row['path']}: cannot decode audio (corrupt frame)")
            if kind is list:
                return np.zeros((2, 100), dtype=np.float32)  # stereo: not what a loader must return
            raise kind("the decoder crashed")
        return tone(track_id)


def tones(n: int = 10, loader: ToneLoader | None = None, name: str = "tones") -> Collection:
    ids = [f"t{k}" for k in range(n)]
    tracks = pd.DataFrame({"split": [("train", "train", "valid", "test")[k % 4] for k in range(n)],
                           "artist": [f"a{k % 3}" for k in range(n)],
                           "path": [f"audio/{i}.mp3" for i in ids]}, index=pd.Index(ids, name="track_id"))
    labels = (np.arange(n * 2).reshape(n, 2) % 3 == 0).astype(np.float32)
    return Collection(name, tracks, ["bass", "drums"], labels, loader or ToneLoader())


def logged(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def assert_equal_to_tones(cache: AudioCache, ids) -> None:
    for track_id in ids:
        np.testing.assert_array_equal(cache.read(track_id), tone(track_id))


# ---- round trip ------------------------------------------------------------------------------
def test_roundtrip_is_exact_and_reads_slices(tmp_path):
    collection = tones(7)
    cache = AudioCache.build(collection, tmp_path / "c", workers=1, progress=False)
    assert sorted(cache.track_ids) == sorted(collection.tracks.index)
    assert_equal_to_tones(cache, collection.tracks.index)
    assert cache.length("t3") == len(tone("t3")) == 5500
    np.testing.assert_array_equal(cache.read("t3", 100, 50), tone("t3")[100:150])
    assert len(cache.read("t3", 5400, 1000)) == 100  # cut short at the end, never past it
    assert cache.read("t3", 9000, 10).shape == (0,)
    assert cache.read("t3").dtype == np.float32
    expected_bytes = sum(len(tone(t)) for t in collection.tracks.index) * 4
    assert (tmp_path / "c" / SAMPLES_FILE).stat().st_size == expected_bytes
    with pytest.raises(KeyError, match="'t99'"):
        cache.read("t99")
    with pytest.raises(ValueError, match="from sample -1"):
        cache.read("t1", -1)


def test_parallel_build_equals_the_loader(tmp_path):
    collection = tones(12)
    cache = AudioCache.build(collection, tmp_path / "c", workers=2, progress=False, chunk_tracks=3)
    assert len(cache) == 12 and not cache.failed
    assert_equal_to_tones(cache, collection.tracks.index)


def test_float16_halves_the_disk(tmp_path):
    collection = tones(4)
    cache = AudioCache.build(collection, tmp_path / "c", dtype="float16", workers=1, progress=False)
    assert (tmp_path / "c" / SAMPLES_FILE).stat().st_size == sum(len(tone(t)) * 2 for t in collection.tracks.index)
    assert cache.read("t2").dtype == np.float32
    np.testing.assert_allclose(cache.read("t2"), tone("t2"), atol=3e-4)
    assert not np.array_equal(cache.read("t2"), tone("t2"))  # it really is stored at half precision


def test_pickled_cache_maps_the_file_again(tmp_path):
    cache = AudioCache.build(tones(3), tmp_path / "c", workers=1, progress=False)
    cache.read("t1")  # the map now exists in this process
    payload = pickle.dumps(cache)
    assert len(payload) < 2000  # the samples are not copied into DataLoader workers
    np.testing.assert_array_equal(pickle.loads(payload).read("t2"), tone("t2"))


# ---- resuming ----------------------------------------------------------------------------------
def test_interrupted_build_resumes_without_decoding_again(tmp_path):
    folder = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):
        AudioCache.build(tones(9, ToneLoader(interrupt_at=6)), folder, workers=1, progress=False, chunk_tracks=2)
    partial = AudioCache.open(folder)
    assert sorted(partial.track_ids) == ["t0", "t1", "t2", "t3", "t4"]  # all decoded before the interrupt are kept
    log = tmp_path / "decoded.txt"
    cache = AudioCache.build(tones(9, ToneLoader(log=log)), folder, workers=1, progress=False)
    assert logged(log) == ["t5", "t6", "t7", "t8"]
    assert_equal_to_tones(cache, [f"t{k}" for k in range(9)])


def test_build_recovers_from_a_kill_between_samples_and_index(tmp_path):
    """Samples written but their index lines not (or half) written: those tracks are decoded again."""
    folder = tmp_path / "c"
    AudioCache.build(tones(6), folder, workers=1, progress=False, chunk_tracks=1)
    index = folder / INDEX_FILE
    lines = index.read_text().splitlines(keepends=True)
    lost = [json.loads(line)[0] for line in lines[4:]]
    index.write_text("".join(lines[:4]) + lines[4][:7])  # a torn last line, as a kill would leave
    with open(folder / SAMPLES_FILE, "ab") as samples:
        samples.write(b"\x01\x02\x03")  # and a torn sample at the end
    log = tmp_path / "decoded.txt"
    cache = AudioCache.build(tones(6, ToneLoader(log=log)), folder, workers=1, progress=False)
    assert sorted(logged(log)) == sorted(lost) and len(lost) == 2
    assert_equal_to_tones(cache, [f"t{k}" for k in range(6)])
    assert (folder / SAMPLES_FILE).stat().st_size == sum(len(tone(f"t{k}")) for k in range(6)) * 4


KILLED_BUILD = """
import sys, time
import numpy as np, pandas as pd
from study.data.cache import AudioCache
from study.data.collection import Collection

folder, pause, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]

class SlowLoader:
    def __call__(self, track_id, row):
        time.sleep(pause)
        with open(log, "a") as decoded:
            decoded.write(track_id + "\\n")
        return np.full(2000 + int(track_id[1:]), int(track_id[1:]), dtype=np.float32)

ids = [f"t{k}" for k in range(40)]
tracks = pd.DataFrame({"split": "train", "artist": "", "path": ""}, index=ids)
collection = Collection("slow", tracks, ["x"], np.zeros((40, 1)), SlowLoader())
AudioCache.build(collection, folder, workers=1, progress=False, chunk_tracks=1)
"""


def test_build_killed_with_sigkill_resumes(tmp_path):
    folder, script = tmp_path / "c", tmp_path / "build.py"
    script.write_text(textwrap.dedent(KILLED_BUILD))

    def build(pause: float, log: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(folder), str(pause), str(log)], cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)})

    killed = build(0.1, tmp_path / "first.txt")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(logged(tmp_path / "first.txt")) < 4:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stored = AudioCache.open(folder).track_ids
    assert 3 <= len(stored) < 40
    assert build(0.0, tmp_path / "second.txt").wait() == 0
    assert set(logged(tmp_path / "second.txt")) == {f"t{k}" for k in range(40)} - set(stored)
    cache = AudioCache.open(folder)
    for k in range(40):
        np.testing.assert_array_equal(cache.read(f"t{k}"), np.full(2000 + k, k, np.float32))
    assert (folder / SAMPLES_FILE).stat().st_size == sum(2000 + k for k in range(40)) * 4


# ---- settings ------------------------------------------------------------------------------------
def test_mismatched_settings_are_refused_by_name(tmp_path):
    collection = tones(3)
    folder = tmp_path / "c"
    AudioCache.build(collection, folder, workers=1, progress=False)
    stored = json.loads((folder / "settings.json").read_text())
    assert stored == cache_settings(collection) and stored["sample_rate"] == 16000
    with pytest.raises(CacheMismatchError, match=r"sample_rate: expected 22050, stored 16000"):
        AudioCache.open(folder, expected=cache_settings(collection, sample_rate=22050))
    with pytest.raises(CacheMismatchError, match=r"dtype: expected 'float16', stored 'float32'") as refused:
        AudioCache.build(collection, folder, dtype="float16", workers=1, progress=False)
    assert "sample_rate" not in str(refused.value)  # only what differs is named
    relabelled = tones(3)
    relabelled.labels[0, 0] = 0.5
    with pytest.raises(CacheMismatchError, match="manifest_hash: expected"):
        AudioCache.open(folder, expected=cache_settings(relabelled))


def test_ensure_cache_refuses_a_cache_of_another_sample_rate(tmp_path):
    cfg = RunConfig(data=DataConfig(cache_dir=str(tmp_path)))
    collection = tones(3)
    ensure_cache(collection, cfg, workers=1, progress=False)
    with pytest.raises(CacheMismatchError, match="sample_rate: expected 8000, stored 16000"):
        ensure_cache(collection, replace(cfg, audio=AudioConfig(sample_rate=8000)), workers=1, progress=False)


def test_a_folder_of_other_files_is_not_built_over(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CacheMismatchError, match="no settings.json"):
        AudioCache.build(tones(2), tmp_path, workers=1, progress=False)
    with pytest.raises(FileNotFoundError, match="no audio cache here"):
        AudioCache.open(tmp_path)


# ---- failures -----------------------------------------------------------------------------------
def test_failed_tracks_are_reported_skipped_and_not_retried(tmp_path, capsys):
    fail = {"t1": AudioError, "t4": RuntimeError, "t6": list}
    folder = tmp_path / "c"
    cache = AudioCache.build(tones(8, ToneLoader(fail=fail)), folder, workers=2, progress=False)
    assert sorted(cache.failed) == ["t1", "t4", "t6"]
    assert sorted(cache.track_ids) == ["t0", "t2", "t3", "t5", "t7"]
    assert "audio/t1.mp3: cannot decode audio" in cache.failed["t1"]
    assert "audio/t4.mp3" in cache.failed["t4"] and "RuntimeError" in cache.failed["t4"]
    assert "expected 1-D mono" in cache.failed["t6"]
    assert "skipped t1" in capsys.readouterr().err
    report = pd.read_csv(folder / FAILED_FILE, sep="\t")
    assert list(report.columns) == ["track_id", "path", "error"]
    assert sorted(report["track_id"]) == ["t1", "t4", "t6"] and "audio/t4.mp3" in set(report["path"])
    with pytest.raises(KeyError, match="failed to decode"):
        cache.read("t1")
    log = tmp_path / "decoded.txt"
    again = AudioCache.build(tones(8, ToneLoader(fail=fail, log=log)), folder, workers=1, progress=False)
    assert logged(log) == [] and again.failed == cache.failed
    assert_equal_to_tones(again, again.track_ids)


def test_ensure_cache_folder_drops_failed_and_reuses(tmp_path):
    log = tmp_path / "decoded.txt"
    collection = tones(6, ToneLoader(fail={"t2": AudioError}, log=log))
    run_cfg = RunConfig().with_overrides(cache_dir=str(tmp_path / "store"))
    cache, kept = ensure_cache(collection, run_cfg, workers=1, progress=False)
    assert cache.directory == tmp_path / "store" / f"tones-{collection.manifest_hash()}"
    assert "t2" not in kept.tracks.index and len(kept) == 5 and kept.labels.shape == (5, 2)
    assert sorted(kept.tracks.index) == sorted(cache.track_ids)
    left_out = kept.excluded_table()
    assert list(left_out["track_id"]) == ["t2"] and list(left_out["reason"]) == ["undecodable"]
    assert kept.manifest_hash() == collection.manifest_hash()  # the data's identity is the data as read
    first = logged(log)
    cache_again, kept_again = ensure_cache(collection, run_cfg, workers=1, progress=False)
    assert logged(log) == first  # nothing decoded the second time
    assert list(kept_again.tracks.index) == list(kept.tracks.index)


def test_a_waiting_process_opens_the_cache_once_another_has_finished_it(tmp_path, capsys):
    """torchrun's other processes on a machine wait, without a time limit, for the first one's build."""
    import threading

    log = tmp_path / "decoded.txt"
    collection = tones(6, ToneLoader(fail={"t2": AudioError}, log=log))
    run_cfg = RunConfig().with_overrides(cache_dir=str(tmp_path / "store"))
    ensure_cache(tones(3), run_cfg, workers=1, progress=False)  # another collection's cache: not this one
    builder = threading.Timer(0.3, lambda: ensure_cache(collection, run_cfg, workers=1, progress=False))
    builder.start()
    try:
        cache, kept = wait_for_cache(collection, run_cfg, poll_seconds=0.05)
    finally:
        builder.join()
    assert "waiting for another process" in capsys.readouterr().err
    assert sorted(cache.track_ids) == sorted(kept.tracks.index) and "t2" not in kept.tracks.index
    assert_equal_to_tones(cache, kept.tracks.index)
    assert sorted(logged(log)) == sorted(collection.tracks.index)  # decoded once, by the builder alone


# ---- real files through study.audio.load_audio --------------------------------------------------
class FileLoader:
    def __init__(self, root: Path):
        self.root = root

    def __call__(self, track_id: str, row: pd.Series) -> np.ndarray:
        return load_audio(self.root / row["path"])


@pytest.mark.parametrize("extension", ["wav", "flac", "ogg", "mp3"])
def test_decodes_files_of_any_format_rate_and_channels(tmp_path, extension):
    seconds, rate = 1.0, 44100
    t = np.arange(int(seconds * rate)) / rate
    left, right = 0.4 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 440 * t + 0.3)
    soundfile.write(tmp_path / f"good.{extension}", np.stack([left, right], axis=1), rate)
    (tmp_path / f"broken.{extension}").write_bytes(b"\x00garbage" * 50)
    ids = ["good", "broken", "missing"]
    tracks = pd.DataFrame({"split": "test", "artist": "", "path": [f"{i}.{extension}" for i in ids]}, index=ids)
    collection = Collection("files", tracks, ["x"], np.zeros((3, 1)), FileLoader(tmp_path))
    cache = AudioCache.build(collection, tmp_path / "c", workers=1, progress=False)
    assert cache.track_ids == ["good"]
    assert f"broken.{extension}" in cache.failed["broken"]
    assert f"missing.{extension}" in cache.failed["missing"] and "no such audio file" in cache.failed["missing"]
    audio = cache.read("good")
    assert abs(len(audio) - 16000) < 1200  # mp3 adds encoder padding
    spectrum = np.abs(np.fft.rfft(audio[2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 440) < 3
    assert 0.3 < np.abs(audio[2000:14000]).max() < 0.45  # the channel mean, not their sum


# ---- the command -----------------------------------------------------------------------------------
def test_cache_and_corpus_commands(tmp_path, monkeypatch, capsys):
    import argparse

    from study.data import cli

    collection = tones(6, ToneLoader(fail={"t5": AudioError}))
    monkeypatch.setattr(cli, "load_collection", lambda data_cfg: collection)
    parser = argparse.ArgumentParser()
    cli.register_cli(parser.add_subparsers())
    args = parser.parse_args(["cache", "--preset", "smoke", "--cache_dir", str(tmp_path), "--workers", "1"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "5 tracks" in out and "1 failed" in out
    assert (tmp_path / f"tones-{collection.manifest_hash()}" / FAILED_FILE).exists()
    args = parser.parse_args(["corpus", "--csv", "--corpus_size", "6"])
    assert args.func(args) == 0
    table = cli.tag_table(collection)
    assert list(table["tag"]) == ["bass", "drums"]  # bass on 2 tracks, drums on 2: stable order
    assert table.loc[0, "positives"] == (collection.labels[:, 0] > 0.5).sum()
    assert "mean_valid" in capsys.readouterr().out
