"""Decoded audio, once: a memory-mapped store of mono samples per track.

Decoding an mp3 and resampling it costs more than a training step, and training reads a new
random patch of every song each epoch (§4), so every collection is decoded once into a folder:

    settings.json  preprocessing settings (format version, collection, manifest hash, sample rate,
                   dtype); opening with other settings is refused with the difference named
    samples.raw    every stored track's samples back to back, one flat array of ``dtype``
    index.jsonl    one line per stored track: ["track_id", offset, length], in samples
    failed.tsv     track_id, path, error of audio that could not be decoded (skipped, never fatal)

The build is resumable.  Samples are appended chunk by chunk; after a chunk's samples are flushed
to disk its index lines are appended.  A build killed at any moment leaves at most a partial
chunk past the last complete index line, which the next build cuts off before it continues, and
tracks already stored or already failed are not decoded again (delete ``failed.tsv`` to retry
failures).  Reads open the memory map lazily in each process, so DataLoader workers share the
pages through the OS instead of copying arrays.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from study.config import DataConfig, RunConfig
from study.data.collection import Collection
from study.paths import resolve_path
from study.progress import progress_bar

FORMAT_VERSION = 1
LOADER_SAMPLE_RATE = 16000  # Collection loaders return 16 kHz audio (docs/paper-details.md, "Input representation")
DTYPES = ("float32", "float16")  # float16 halves the disk; its ~1e-3 step is far below the audio's noise
CHUNK_TRACKS = 64  # tracks per committed chunk: what a killed build can lose
CHUNK_BYTES = 128 * 2**20

SETTINGS_FILE = "settings.json"
SAMPLES_FILE = "samples.raw"
INDEX_FILE = "index.jsonl"
FAILED_FILE = "failed.tsv"
LOCK_FILE = ".lock"


class CacheMismatchError(ValueError):
    """The cache folder was built with other preprocessing settings than the run asks for."""


def cache_settings(collection: Collection, *, sample_rate: int = 16000, dtype: str = "float32") -> dict[str, Any]:
    """The settings a cache of ``collection`` is built with, and checked against on open."""
    if dtype not in DTYPES:
        raise ValueError(f"cache dtype {dtype!r} is not supported; expected one of {DTYPES}")
    return {
        "format_version": FORMAT_VERSION,
        "collection": collection.name,
        "manifest_hash": collection.manifest_hash(),
        "sample_rate": int(sample_rate),
        "dtype": dtype,
    }


def cache_folder(collection: Collection, data_cfg: DataConfig) -> Path:
    """``<cache_dir>/<collection name>-<manifest hash>``: equal data shares one decoded copy.

    ``cache_dir`` follows the study's path rule (:mod:`study.paths`): relative to the repository root.
    """
    return resolve_path(data_cfg.cache_dir) / f"{collection.name}-{collection.manifest_hash()}"


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class AudioCache:
    """Read access to a built cache folder; make one with :meth:`build` or :meth:`open`."""

    def __init__(self, directory: Path, settings: dict[str, Any], index: dict[str, tuple[int, int]],
                 failed: dict[str, str]) -> None:
        self.directory = Path(directory)
        self.settings = dict(settings)
        self.failed = dict(failed)  # track_id -> error message (with the path)
        self._index = index  # track_id -> (offset, length) in samples
        self._samples: np.ndarray | None = None
        self._samples_pid: int | None = None
        self._lock = threading.Lock()

    # ---- making one ------------------------------------------------------------------------
    @classmethod
    def open(cls, directory: str | Path, *, expected: dict[str, Any] | None = None) -> "AudioCache":
        """Open a cache folder; ``expected`` settings that differ from the stored ones are refused."""
        directory = Path(directory)
        settings = _read_settings(directory)
        if settings is None:
            raise FileNotFoundError(f"{directory}: no audio cache here ({SETTINGS_FILE} is missing); "
                                    f"build one with `study cache` or ensure_cache()")
        _check_settings(directory, settings, expected or {})
        itemsize = np.dtype(settings["dtype"]).itemsize
        data_path = directory / SAMPLES_FILE
        stored_samples = data_path.stat().st_size // itemsize if data_path.exists() else 0
        index, _ = _read_index(directory / INDEX_FILE, stored_samples)
        return cls(directory, settings, index, _read_failed(directory / FAILED_FILE))

    @classmethod
    def build(cls, collection: Collection, directory: str | Path, *, sample_rate: int = 16000,
              dtype: str = "float32", workers: int = 2, progress: bool = True,
              chunk_tracks: int = CHUNK_TRACKS) -> "AudioCache":
        """Decode every track of ``collection`` not yet stored (or failed) into ``directory``.

        ``workers`` > 1 decodes in a process pool (the collection's loader must be picklable);
        1 decodes in this process.  Undecodable tracks are reported with their path, listed in
        ``failed.tsv`` and in ``cache.failed``, and skipped.
        """
        ids = collection.tracks.index
        if ids.has_duplicates or not all(isinstance(t, str) for t in ids):
            raise ValueError(f"{collection.name}: track ids must be unique strings to be cached; got e.g. "
                             f"{list(ids[ids.duplicated()][:3]) or [t for t in ids if not isinstance(t, str)][:3]}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        settings = cache_settings(collection, sample_rate=sample_rate, dtype=dtype)
        with _exclusive(directory / LOCK_FILE):  # two runs building one folder take turns
            _claim_settings(directory, settings)
            writer = _ChunkWriter(directory, dtype, chunk_tracks=chunk_tracks)
            failed = _read_failed(directory / FAILED_FILE)
            todo = [t for t in collection.tracks.index if t not in writer.index and t not in failed]
            if todo:
                _decode_into(writer, collection, todo, settings, workers=workers, progress=progress)
            else:
                writer.close()
        cache = cls.open(directory, expected=settings)
        if cache.failed:
            print(f"{directory}: {len(cache.failed)} tracks could not be decoded and are left out; "
                  f"see {directory / FAILED_FILE}", file=sys.stderr)
        return cache

    # ---- reading -----------------------------------------------------------------------------
    @property
    def track_ids(self) -> list[str]:
        """The tracks that decoded, in the order they were stored."""
        return list(self._index)

    @property
    def sample_rate(self) -> int:
        return int(self.settings["sample_rate"])

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._index

    def length(self, track_id: str) -> int:
        return self._entry(track_id)[1]

    def read(self, track_id: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """float32 samples ``[start, start + length)`` of a track, cut short at its end."""
        offset, total = self._entry(track_id)
        if start < 0 or (length is not None and length < 0):
            raise ValueError(f"{self.directory}: cannot read {track_id!r} from sample {start} for {length} samples")
        stop = total if length is None else min(total, start + length)
        start = min(start, total)
        samples = self._memmap()[offset + start:offset + stop]
        return np.array(samples, dtype=np.float32)  # a copy: writable, and detached from the map

    def total_samples(self) -> int:
        return sum(length for _, length in self._index.values())

    def summary(self) -> str:
        hours = self.total_samples() / self.sample_rate / 3600
        size = (self.directory / SAMPLES_FILE).stat().st_size / 2**30 if len(self) else 0.0
        return (f"{self.directory}: {len(self)} tracks, {hours:.2f} h at {self.sample_rate} Hz "
                f"({self.settings['dtype']}, {size:.2f} GiB), {len(self.failed)} failed")

    def _entry(self, track_id: str) -> tuple[int, int]:
        try:
            return self._index[track_id]
        except KeyError:
            why = f"it failed to decode: {self.failed[track_id]}" if track_id in self.failed else "it is not stored"
            raise KeyError(f"{self.directory}: no audio for track {track_id!r}; {why}") from None

    def _memmap(self) -> np.ndarray:
        """The flat sample array, mapped once per process (a forked map is not reused)."""
        if self._samples is None or self._samples_pid != os.getpid():
            with self._lock:
                path = self.directory / SAMPLES_FILE
                dtype = np.dtype(self.settings["dtype"])
                if path.exists() and path.stat().st_size >= dtype.itemsize:
                    self._samples = np.memmap(path, dtype=dtype, mode="r")
                else:  # numpy cannot map an empty file
                    self._samples = np.zeros(0, dtype=dtype)
                self._samples_pid = os.getpid()
        return self._samples

    def __getstate__(self) -> dict[str, Any]:
        """Pickled into DataLoader workers without the map (each worker maps the file itself)."""
        state = dict(self.__dict__)
        state.update(_samples=None, _samples_pid=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AudioCache({str(self.directory)!r}, tracks={len(self)}, failed={len(self.failed)})"


def ensure_cache(collection: Collection, cfg: RunConfig, *, workers: int | None = None, dtype: str | None = None,
                 progress: bool = True) -> tuple[AudioCache, Collection]:
    """The one call experiments use: build or resume, then open, the collection's cache.

    ``cfg.data`` says where (``cache_dir``) and how (``cache_dtype``, unless ``dtype`` is given),
    ``cfg.audio`` at which sample rate.  Returns the cache and the collection without the tracks
    that failed to decode, each listed in its ``excluded`` as undecodable.
    """
    data_cfg, audio_cfg = cfg.data, cfg.audio
    dtype = dtype or data_cfg.cache_dtype
    workers = default_workers() if workers is None else workers
    folder = cache_folder(collection, data_cfg)
    settings = cache_settings(collection, sample_rate=audio_cfg.sample_rate, dtype=dtype)
    cache = _complete_cache(collection, folder, settings)
    if cache is None:
        cache = AudioCache.build(collection, folder, sample_rate=audio_cfg.sample_rate, dtype=dtype,
                                 workers=workers, progress=progress)
    missing = [t for t in collection.tracks.index if t not in cache and t not in cache.failed]
    assert not missing, f"cache build left {len(missing)} tracks undecided, e.g. {missing[:3]}"
    return cache, _decodable(collection, cache)


def _decodable(collection: Collection, cache: AudioCache) -> Collection:
    """The collection without the tracks that failed to decode, each listed in its ``excluded``."""
    failed = {track_id: cache.failed[track_id] for track_id in collection.tracks.index if track_id in cache.failed}
    return collection.exclude(failed, reason="undecodable") if failed else collection


def wait_for_cache(collection: Collection, cfg: RunConfig, *, poll_seconds: float = 10.0) -> tuple[AudioCache, Collection]:
    """What :func:`ensure_cache` returns, once another process (torchrun's first process on this
    machine) has built the cache: polls the folder, without a time limit, and decodes nothing."""
    folder = cache_folder(collection, cfg.data)
    settings = cache_settings(collection, sample_rate=cfg.audio.sample_rate, dtype=cfg.data.cache_dtype)
    cache, announced = _complete_cache(collection, folder, settings), False
    while cache is None:
        if not announced:
            print(f"waiting for another process to build the audio cache in {folder}", file=sys.stderr, flush=True)
            announced = True
        time.sleep(poll_seconds)
        cache = _complete_cache(collection, folder, settings)
    return cache, _decodable(collection, cache)


def _complete_cache(collection: Collection, folder: Path, settings: dict[str, Any]) -> AudioCache | None:
    """The cache in ``folder`` when it holds (or lists as failed) every track of ``collection``, else None."""
    if not (folder / SETTINGS_FILE).exists():
        return None
    cache = AudioCache.open(folder, expected=settings)
    complete = all(t in cache or t in cache.failed for t in collection.tracks.index)
    return cache if complete else None


# ---- decoding ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Decoder:
    """Picklable: one track id and row -> (track_id, samples in the cache dtype or None, error)."""

    loader: Callable[[str, pd.Series], np.ndarray]
    sample_rate: int
    dtype: str

    def __call__(self, job: tuple[str, pd.Series]) -> tuple[str, np.ndarray | None, str]:
        track_id, row = job
        try:
            audio = np.asarray(self.loader(track_id, row), dtype=np.float32)
            if audio.ndim != 1:
                raise ValueError(f"the loader returned shape {audio.shape}; expected 1-D mono samples")
            if self.sample_rate != LOADER_SAMPLE_RATE:
                import librosa  # only when the run asks for another rate than the loaders give

                audio = librosa.resample(audio, orig_sr=LOADER_SAMPLE_RATE, target_sr=self.sample_rate,
                                         res_type="soxr_hq")
            audio = audio.astype(self.dtype)
            if audio.size == 0:
                raise ValueError("the audio has no samples")
            if not np.isfinite(audio).all():
                raise ValueError(f"the audio has NaN or infinite samples (as {self.dtype})")
        except Exception as error:  # reported and skipped; KeyboardInterrupt still stops the build
            path = row.get("path", "") if hasattr(row, "get") else ""
            message = str(error) if (path and str(path) in str(error)) else f"{path or track_id}: {error}"
            return track_id, None, f"{type(error).__name__}: {message}"
        return track_id, audio, ""


_WORKER_DECODER: _Decoder | None = None


def _start_worker(decoder: _Decoder) -> None:
    global _WORKER_DECODER
    _WORKER_DECODER = decoder
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, by the parent


def _decode_in_worker(job: tuple[str, pd.Series]) -> tuple[str, np.ndarray | None, str]:
    assert _WORKER_DECODER is not None
    return _WORKER_DECODER(job)


def _decoded(decoder: _Decoder, jobs: Iterable[tuple[str, pd.Series]], workers: int) -> Iterator[tuple]:
    if workers <= 1:
        yield from map(decoder, jobs)
        return
    with multiprocessing.get_context().Pool(workers, initializer=_start_worker, initargs=(decoder,)) as pool:
        yield from pool.imap_unordered(_decode_in_worker, jobs, chunksize=1)


def _decode_into(writer: "_ChunkWriter", collection: Collection, todo: list[str], settings: dict[str, Any], *,
                 workers: int, progress: bool) -> None:
    decoder = _Decoder(collection.loader, settings["sample_rate"], settings["dtype"])
    jobs = ((track_id, collection.tracks.loc[track_id]) for track_id in todo)
    done = len(collection) - len(todo)
    bar = progress_bar(total=len(collection), initial=done, show=progress, unit="track",
                       desc=f"caching {collection.name}")
    paths = collection.tracks["path"] if "path" in collection.tracks else pd.Series("", index=collection.tracks.index)
    results = _decoded(decoder, jobs, min(workers, len(todo)))
    try:
        for track_id, audio, error in results:
            if audio is None:
                writer.fail(track_id, paths.at[track_id], error)
                tqdm.write(f"skipped {track_id}: {error}", file=sys.stderr)
            else:
                writer.add(track_id, audio)
            bar.update()
    finally:
        results.close()  # stops the worker pool, also when interrupted
        writer.close()  # commits every sample already on disk
        bar.close()


# ---- the files ----------------------------------------------------------------------------------
class _ChunkWriter:
    """Appends samples and index lines so that a kill at any moment loses at most one chunk."""

    def __init__(self, directory: Path, dtype: str, *, chunk_tracks: int) -> None:
        self.itemsize = np.dtype(dtype).itemsize
        self.chunk_tracks = max(1, chunk_tracks)
        data_path, index_path = directory / SAMPLES_FILE, directory / INDEX_FILE
        data_path.touch()
        self.index, index_bytes = _read_index(index_path, data_path.stat().st_size // self.itemsize)
        self.end = max((offset + length for offset, length in self.index.values()), default=0)
        # cut off what a killed build wrote past its last commit
        os.truncate(data_path, self.end * self.itemsize)
        if index_path.exists():
            os.truncate(index_path, index_bytes)
        self._data = open(data_path, "ab")
        self._index_file = open(index_path, "a", encoding="utf-8")
        self._failed_path = directory / FAILED_FILE
        self._pending: list[tuple[str, int, int]] = []
        self._pending_bytes = 0

    def add(self, track_id: str, audio: np.ndarray) -> None:
        self._data.write(audio.tobytes())
        self._pending.append((track_id, self.end, len(audio)))
        self.end += len(audio)
        self._pending_bytes += audio.nbytes
        if len(self._pending) >= self.chunk_tracks or self._pending_bytes >= CHUNK_BYTES:
            self.commit()

    def fail(self, track_id: str, path: str, message: str) -> None:
        new = not self._failed_path.exists() or self._failed_path.stat().st_size == 0
        with open(self._failed_path, "a", encoding="utf-8") as report:
            if new:
                report.write("track_id\tpath\terror\n")
            report.write("\t".join(" ".join(str(v).split()) for v in (track_id, path, message)) + "\n")

    def commit(self) -> None:
        """Index the pending tracks whose samples are on disk (all of them, unless interrupted)."""
        if not self._pending:
            return
        self._data.flush()
        os.fsync(self._data.fileno())
        on_disk = os.fstat(self._data.fileno()).st_size // self.itemsize
        ready = [entry for entry in self._pending if entry[1] + entry[2] <= on_disk]
        self._index_file.write("".join(json.dumps(list(entry)) + "\n" for entry in ready))
        self._index_file.flush()
        os.fsync(self._index_file.fileno())
        self.index.update({track_id: (offset, length) for track_id, offset, length in ready})
        self._pending, self._pending_bytes = [], 0

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._data.close()
            self._index_file.close()


def _read_index(path: Path, stored_samples: int) -> tuple[dict[str, tuple[int, int]], int]:
    """Committed entries, up to the first incomplete or inconsistent line, and their byte length."""
    index: dict[str, tuple[int, int]] = {}
    good_bytes = 0
    if not path.exists():
        return index, 0
    with open(path, "rb") as lines:
        for line in lines:
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("incomplete line")
                track_id, offset, length = json.loads(line)
                if offset + length > stored_samples:
                    raise ValueError("entry past the stored samples")
            except ValueError:
                break  # everything from here on is an unfinished chunk
            index[str(track_id)] = (int(offset), int(length))
            good_bytes += len(line)
    return index, good_bytes


def _read_failed(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    failed: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True)[1:]:
        fields = line.rstrip("\n").split("\t")
        if line.endswith("\n") and len(fields) == 3:
            failed[fields[0]] = fields[2]
    return failed


def _read_settings(directory: Path) -> dict[str, Any] | None:
    path = directory / SETTINGS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _check_settings(directory: Path, stored: dict[str, Any], expected: dict[str, Any]) -> None:
    differences = [f"{key}: expected {value!r}, stored {stored.get(key, '<missing>')!r}"
                   for key, value in expected.items() if stored.get(key) != value]
    if differences:
        raise CacheMismatchError(
            f"{directory / SETTINGS_FILE}: the cache was built with other settings ({'; '.join(differences)}). "
            f"Delete {directory} to rebuild it, or set another cache_dir."
        )


def _claim_settings(directory: Path, settings: dict[str, Any]) -> None:
    """Write the settings of a new cache folder, or check those of an existing one."""
    stored = _read_settings(directory)
    if stored is not None:
        _check_settings(directory, stored, settings)
        return
    if any(p.name not in (LOCK_FILE, SETTINGS_FILE + ".tmp") for p in directory.iterdir()):
        raise CacheMismatchError(f"{directory}: holds files but no {SETTINGS_FILE}; refusing to build a cache "
                                 f"over them. Choose an empty or new folder.")
    temporary = directory / (SETTINGS_FILE + ".tmp")
    temporary.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, directory / SETTINGS_FILE)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, one builder at a time is then the user's business
        yield
        return
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
