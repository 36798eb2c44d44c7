"""Handcrafted timbre, rhythm and harmony descriptors for the GBT baseline (§5.1, Table 1).

The paper's baseline is "a music feature extractor (in essence: timbre, rhythm, and harmony
descriptors)" feeding one gradient-boosted tree model per tag [22].  Its extractor is not public,
so this is a librosa reading of those three families, summarised over the whole clip into one
fixed-length vector: MFCCs and spectral shape (timbre), onset strength, tempo and tempogram
(rhythm), chroma and tonnetz (harmony).
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Iterable, Protocol

import librosa
import numpy as np
import pandas as pd

from study.atomic import atomic_open

FEATURE_VERSION = 1  # bump when a descriptor changes: cached matrices of another version are recomputed
N_FFT = 2048  # 128 ms at 16 kHz: the usual analysis frame of descriptor extractors
HOP = 512
N_MFCC = 20
# tempogram energy is summarised in these tempo bands (BPM): slow .. very fast pulses
TEMPO_BANDS = ((30, 60), (60, 90), (90, 120), (120, 160), (160, 220), (220, 320))
SAVE_EVERY_SECONDS = 120.0  # how much extraction an interruption can cost


class AudioSource(Protocol):
    """Anything that returns a track's 16 kHz mono audio by id (an AudioCache, a Collection adaptor)."""

    def read(self, track_id: str) -> np.ndarray: ...


def _stats(prefix: str, frames: np.ndarray, out: dict[str, float]) -> None:
    """Mean and standard deviation over time of each row of ``frames`` (rows, frames)."""
    frames = np.atleast_2d(frames)
    suffix = [""] if len(frames) == 1 else [f"_{i}" for i in range(len(frames))]
    for statistic, values in (("mean", frames.mean(axis=1)), ("std", frames.std(axis=1))):
        for tail, value in zip(suffix, values):
            out[f"{prefix}_{statistic}{tail}"] = float(value)


def clip_descriptors(audio: np.ndarray, sample_rate: int = 16000) -> dict[str, float]:
    """Named descriptors of one clip; the same names in the same order for every clip."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"clip_descriptors expects mono audio (samples,), got shape {audio.shape}")
    if len(audio) < N_FFT:  # a clip shorter than one analysis frame: pad with silence
        audio = np.pad(audio, (0, N_FFT - len(audio)))
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns about empty frequency sets on silent input
        magnitude = np.abs(librosa.stft(audio, n_fft=N_FFT, hop_length=HOP))  # (freq, frames)
        power = magnitude ** 2
        mel = librosa.feature.melspectrogram(S=power, sr=sample_rate, n_mels=96)  # (96, frames)
        log_mel = librosa.power_to_db(mel)

        # timbre: MFCCs with their deltas, spectral shape, loudness
        mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC)  # (20, frames)
        width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))  # delta window must fit the clip
        _stats("mfcc", mfcc, out)
        if width >= 3:
            delta, delta2 = librosa.feature.delta(mfcc, width=width), librosa.feature.delta(mfcc, width=width, order=2)
        else:
            delta = delta2 = np.zeros_like(mfcc)
        out.update({f"mfcc_delta_std_{i}": float(v) for i, v in enumerate(delta.std(axis=1))})
        out.update({f"mfcc_delta2_std_{i}": float(v) for i, v in enumerate(delta2.std(axis=1))})
        _stats("centroid", librosa.feature.spectral_centroid(S=magnitude, sr=sample_rate), out)
        _stats("bandwidth", librosa.feature.spectral_bandwidth(S=magnitude, sr=sample_rate), out)
        _stats("rolloff", librosa.feature.spectral_rolloff(S=magnitude, sr=sample_rate), out)
        _stats("flatness", librosa.feature.spectral_flatness(S=magnitude), out)
        _stats("contrast", librosa.feature.spectral_contrast(S=magnitude, sr=sample_rate, fmin=100.0), out)
        _stats("zcr", librosa.feature.zero_crossing_rate(audio, frame_length=N_FFT, hop_length=HOP), out)
        _stats("rms", librosa.feature.rms(S=magnitude, frame_length=N_FFT), out)

        # rhythm: onset strength, tempo, periodicity in tempo bands, onset rate
        onset = librosa.onset.onset_strength(S=log_mel, sr=sample_rate, hop_length=HOP)  # (frames,)
        _stats("onset", onset, out)
        out["onset_max"] = float(onset.max())
        tempogram = librosa.feature.tempogram(onset_envelope=onset, sr=sample_rate, hop_length=HOP)  # (lags, frames)
        out["tempo"] = float(librosa.feature.tempo(onset_envelope=onset, sr=sample_rate, hop_length=HOP)[0])
        profile = tempogram.mean(axis=1)  # mean autocorrelation per lag; lag 0 is 1 by normalisation
        bpm = librosa.tempo_frequencies(len(profile), sr=sample_rate, hop_length=HOP)
        for low, high in TEMPO_BANDS:
            band = (bpm >= low) & (bpm < high)
            out[f"tempogram_{low}_{high}bpm"] = float(profile[band].mean()) if band.any() else 0.0
        out["pulse_clarity"] = float(profile[1:].max()) if len(profile) > 1 else 0.0
        onsets = librosa.onset.onset_detect(onset_envelope=onset, sr=sample_rate, hop_length=HOP)
        out["onset_rate"] = len(onsets) / (len(audio) / sample_rate)

        # harmony: pitch-class profile and tonal centroid
        chroma = librosa.feature.chroma_stft(S=power, sr=sample_rate, n_fft=N_FFT)  # (12, frames)
        _stats("chroma", chroma, out)
        _stats("tonnetz", librosa.feature.tonnetz(chroma=chroma, sr=sample_rate), out)
    # silence gives 0/0 in a few ratios: a defined value keeps the trees usable
    return {name: (value if np.isfinite(value) else 0.0) for name, value in out.items()}


def feature_names(sample_rate: int = 16000) -> list[str]:
    """Names of the descriptor vector's entries, in order."""
    return list(clip_descriptors(np.zeros(sample_rate, dtype=np.float32), sample_rate))


def clip_features(audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """One fixed-length float32 vector per clip (see :func:`feature_names`)."""
    return np.fromiter(clip_descriptors(audio, sample_rate).values(), dtype=np.float32)


def feature_table(matrix: np.ndarray, track_ids: list[str], sample_rate: int = 16000) -> pd.DataFrame:
    """Descriptors as a DataFrame indexed by track id, with named columns (for notebooks)."""
    return pd.DataFrame(matrix, index=pd.Index(track_ids, name="track_id"), columns=feature_names(sample_rate))


def _features_of(source: AudioSource, track_ids: list[str], sample_rate: int) -> np.ndarray:
    """Worker task: descriptors of a chunk of tracks, (len(track_ids), n_features)."""
    return np.stack([clip_features(source.read(track_id), sample_rate) for track_id in track_ids])


def extract_features(source: AudioSource, track_ids: Iterable[str], *, cache_path: str | Path | None = None,
                     workers: int = 2, sample_rate: int = 16000, chunk: int = 256,
                     progress: bool = True) -> np.ndarray:
    """Descriptor matrix (len(track_ids), n_features), computed in parallel and cached.

    The cache (an .npz beside the audio cache) is keyed by track id and ``FEATURE_VERSION``; it is
    saved every few minutes while extracting, so an interrupted extraction resumes near where it stopped.
    """
    track_ids = [str(t) for t in track_ids]
    names = feature_names(sample_rate)
    known = _read_feature_cache(cache_path, names, sample_rate) if cache_path else {}
    missing = [t for t in dict.fromkeys(track_ids) if t not in known]
    if missing:
        chunks = [missing[i:i + chunk] for i in range(0, len(missing), chunk)]
        if workers > 1 and len(chunks) > 1:
            from joblib import Parallel, delayed

            blocks = Parallel(n_jobs=workers, return_as="generator")(
                delayed(_features_of)(source, ids, sample_rate) for ids in chunks)
        else:
            blocks = (_features_of(source, ids, sample_rate) for ids in chunks)
        started = last_save = time.perf_counter()
        done = 0
        for ids, block in zip(chunks, blocks):
            known.update(zip(ids, block))
            done += len(ids)
            now = time.perf_counter()
            if cache_path and now - last_save > SAVE_EVERY_SECONDS:
                _write_feature_cache(cache_path, known, names, sample_rate)
                last_save = now
            if progress and (done == len(missing) or len(chunks) > 1):
                print(f"descriptors: {done}/{len(missing)} clips ({now - started:.0f} s)", flush=True)
        if cache_path:
            _write_feature_cache(cache_path, known, names, sample_rate)
    if not track_ids:
        return np.zeros((0, len(names)), dtype=np.float32)
    return np.stack([known[t] for t in track_ids]).astype(np.float32)


def _read_feature_cache(path: str | Path, names: list[str], sample_rate: int) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            same = (int(data["version"]) == FEATURE_VERSION and int(data["sample_rate"]) == sample_rate
                    and list(data["names"]) == names)
            if not same:
                print(f"{path}: descriptors of another version; recomputing")
                return {}
            return dict(zip((str(t) for t in data["track_ids"]), data["features"]))
    except Exception as error:  # a damaged cache is recomputed, not trusted
        print(f"{path}: unreadable feature cache ({error}); recomputing")
        return {}


def _write_feature_cache(path: str | Path, known: dict[str, np.ndarray], names: list[str], sample_rate: int) -> None:
    """Written atomically, so a crash leaves the previous cache intact."""
    with atomic_open(path) as handle:
        np.savez(handle, version=FEATURE_VERSION, sample_rate=sample_rate, names=np.asarray(names, dtype=str),
                 track_ids=np.asarray(list(known), dtype=str), features=np.stack(list(known.values())))
