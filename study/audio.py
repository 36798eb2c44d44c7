"""Audio decoding to 16 kHz mono, and the log-mel spectrogram computed in torch.

The log-mel runs inside the model, batched on the model's device, with librosa's own mel
filterbank so that it equals ``librosa.feature.melspectrogram`` followed by the authors'
``log10(1 + 10000 * mel)`` (docs/paper-details.md, "Input representation").
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import audioread
import librosa
import numpy as np
import soundfile
import torch
from torch import nn

from study.config import AudioConfig


class AudioError(Exception):
    """A file that cannot be decoded, or a signal that cannot be used; the message names it."""


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode any format / rate / channel count to mono float32 at ``sample_rate``.

    libsndfile (wav, flac, ogg, mp3, aiff, ...) first; audioread for what it cannot read (m4a,
    wma, ...), which needs ffmpeg or another system decoder: without one, audioread reads only
    the WAV/AIFF/AU that libsndfile already does.  A failure says what is wrong with the file:
    empty, not audio, truncated, or a format that needs ffmpeg.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    data, rate = _decode(path)
    if data.size == 0:
        raise AudioError(f"{path}: a valid header with no samples after it")
    if rate != sample_rate:
        data = librosa.resample(data, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    data = np.ascontiguousarray(data, dtype=np.float32)
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: decoded samples contain NaN or infinity")
    return data


# ---- decoding, and saying why it failed ---------------------------------------------------------
# Leading bytes of the containers we can name: (name, whether libsndfile reads it).
_MAGIC = (
    (b"RIFF", "WAV", True), (b"RF64", "WAV (RF64)", True), (b"FORM", "AIFF", True), (b".snd", "AU", True),
    (b"fLaC", "FLAC", True), (b"OggS", "Ogg", True), (b"ID3", "MP3", True), (b"caff", "CAF", True),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "WMA/ASF", False), (b"\x1a\x45\xdf\xa3", "Matroska/WebM", False),
    (b"#!AMR", "AMR", False), (b"MAC ", "Monkey's Audio", False), (b"wvpk", "WavPack", False), (b"ADIF", "AAC", False),
)
_WAV_SIZE_SENTINELS = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # data sizes that streaming writers leave unfinished


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """(mono samples, rate) by libsndfile, else by audioread; an AudioError says what is wrong."""
    with open(path, "rb") as handle:
        head = handle.read(64)
    kind, libsndfile_reads = _sniff(head)
    with decoder_stderr() as notes:
        info = data = failure = None
        try:
            info = soundfile.info(str(path))
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        except Exception as error:  # not a format libsndfile knows, or a read that stops early
            failure = error
    if info is not None:
        return _checked_libsndfile(path, info, data, failure, notes)
    decoders = compressed_decoders()
    if decoders:
        try:
            with decoder_stderr(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return librosa.load(str(path), sr=None, mono=True)  # libsndfile fails again, then audioread
        except Exception as error:
            fallback = f"{', '.join(decoders)}: {error}"
    if kind is None:
        raise AudioError(f"{path}: not an audio file ({_describe_head(head)})")
    if libsndfile_reads:
        raise AudioError(f"{path}: damaged {kind} file: it cannot be decoded ({_reason(failure, notes)})")
    if not decoders:
        raise AudioError(f"{path}: this format ({kind}) needs ffmpeg, which is not installed; install ffmpeg "
                         f"or convert the file to WAV or FLAC")
    raise AudioError(f"{path}: cannot decode {kind} ({fallback})")


def _checked_libsndfile(path: Path, info, data: np.ndarray | None, failure: Exception | None,
                        notes: list[str]) -> tuple[np.ndarray, int]:
    """libsndfile's decode, mono; a read that stopped early, or a header that promises more audio
    than the file holds, is reported as truncated with both lengths."""
    rate = info.samplerate
    if data is None:
        decoded = _frames_before_failure(path)
        raise AudioError(f"{path}: truncated or damaged {info.format} data: decoding stops at "
                         f"{decoded / rate:.2f} s of the {info.frames / rate:.2f} s its header announces "
                         f"({_reason(failure, notes)})")
    announced = _announced_frames(info, notes)
    if announced is not None and len(data) < announced:
        held = f"only {len(data) / rate:.2f} s" if len(data) else "no audio"
        raise AudioError(f"{path}: truncated: its header announces {announced / rate:.2f} s of audio, the file holds "
                         f"{held} ({path.stat().st_size:,} bytes)")
    return data.mean(axis=1), rate


def _frames_before_failure(path: Path) -> int:
    """How many frames decode before libsndfile gives up."""
    frames = 0
    try:
        with decoder_stderr(), soundfile.SoundFile(str(path)) as handle:
            for block in handle.blocks(blocksize=1024, dtype="float32", always_2d=True):
                frames += len(block)
    except Exception:
        pass
    return frames


def _announced_frames(info, notes: list[str]) -> int | None:
    """Frames the header promises when it says more than the file holds, else None.

    WAV: libsndfile logs ``data : <header size> (should be <bytes present>)``.  MP3: mpg123 warns
    that the Xing header's stream size is off, and ``info.frames`` is the Xing count.
    """
    if info.format == "WAV":
        sizes = re.search(r"^data : (\d+) \(should be (\d+)\)", info.extra_info, re.MULTILINE)
        align = re.search(r"Block Align\s*:\s*(\d+)", info.extra_info)
        if sizes and align and int(sizes.group(1)) not in _WAV_SIZE_SENTINELS:
            claimed, present = int(sizes.group(1)), int(sizes.group(2))
            if claimed > present:
                return claimed // max(1, int(align.group(1)))
    if info.format == "MP3" and any("Xing stream size off" in note for note in notes):
        return info.frames
    return None


def _sniff(head: bytes) -> tuple[str | None, bool]:
    """(container name, whether libsndfile reads it) from a file's first bytes; (None, False) if unknown."""
    if head[4:8] == b"ftyp":
        return "MP4/M4A", False
    for magic, name, libsndfile_reads in _MAGIC:
        if head.startswith(magic):
            return name, libsndfile_reads
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame sync
        return ("AAC (ADTS)", False) if head[1] & 0x06 == 0 else ("MP3", True)
    return None, False


def _describe_head(head: bytes) -> str:
    """What a file's first bytes look like, for a 'not an audio file' message."""
    text = head.decode("utf-8", "replace").rstrip("\ufffd")  # the head may end inside a character
    if text.strip() and all(char.isprintable() or char in "\t\n\r" for char in text):
        first = text.strip().splitlines()[0][:40]
        return f"it is text, beginning {first!r}"
    return f"unknown format, beginning {head[:8].hex(' ')}"


def _reason(error: Exception | None, notes: list[str]) -> str:
    """The decoder's own words, short: mpg123's note, else libsndfile's message without the path."""
    cleaned = [re.sub(r"^(\[[^]]*\]\s*)?((note|warning):\s*)?", "", note, flags=re.IGNORECASE).strip() for note in notes]
    for note in cleaned:
        if note.startswith("Illegal Audio-MPEG-Header"):
            return f"no valid MPEG audio frame; mpg123: {note.rstrip('.')}"
    message = re.sub(r"^Error opening '.*?': ", "", str(error)).strip().removeprefix("Error : ").rstrip(".")
    if "is not a regular file" in message:  # libsndfile's words for a file its mp3 decoder rejects
        message = ""
    return message or next((note for note in cleaned if note), "no reason given")


def compressed_decoders() -> list[str]:
    """audioread's decoders beyond its standard-library WAV/AIFF/AU reader (ffmpeg, GStreamer, Core Audio, MAD)."""
    return [backend.__name__ for backend in audioread.available_backends()
            if backend.__module__ != "audioread.rawread"]


@contextmanager
def decoder_stderr() -> Iterator[list[str]]:
    """Keep the C decoders' own notes (mpg123's ``Note: Illegal Audio-MPEG-Header ...``, written to file
    descriptor 2 on every open) off the terminal; their lines are handed back for the error message."""
    notes: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no file descriptor 2 to borrow: let the notes through
        yield notes
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield notes
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            notes.extend(line for line in sink.read().decode("utf-8", "replace").splitlines() if line.strip())


def check_waveform(batch: torch.Tensor, min_samples: int, what: str = "model input") -> None:
    """Raise a clear error for the wrong rank, a too-short input or non-finite samples."""
    if batch.dim() != 2:
        raise ValueError(f"{what}: expected a batch of waveforms shaped (batch, samples), got shape {tuple(batch.shape)}")
    if batch.shape[1] < min_samples:
        raise ValueError(
            f"{what}: {batch.shape[1]} samples is too short; this model needs at least {min_samples} samples"
        )
    # a NaN or an infinity anywhere makes the sum non-finite: one pass where the elementwise test takes four;
    # a sum that overflows on finite samples is checked element by element
    if not torch.isfinite(batch.sum()) and not torch.isfinite(batch).all():
        raise ValueError(f"{what}: the waveform contains NaN or infinite samples")


def mel_filterbank(cfg: AudioConfig) -> np.ndarray:
    """librosa's Slaney-scale, area-normalised filterbank, (n_mels, 1 + n_fft // 2)."""
    return librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)


def n_frames(n_samples: int, hop_length: int = 256) -> int:
    """Frames of a centred STFT: 1 + floor(n / hop) (3 s -> 188, 15 s -> 938; the authors cropped to 187 / 937)."""
    return 1 + n_samples // hop_length


class LogMel(nn.Module):
    """(batch, samples) waveform -> (batch, frames, n_mels) log-compressed mel power."""

    def __init__(self, cfg: AudioConfig = AudioConfig()) -> None:
        super().__init__()
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.log_gain = cfg.log_gain
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True), persistent=False)
        self.register_buffer("filterbank", torch.from_numpy(mel_filterbank(cfg)), persistent=False)

    def mel_power(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, n_mels, frames) mel power, in float32 even under autocast (float64 stays)."""
        with torch.autocast(device_type=waveform.device.type, enabled=False):  # power spectra overflow float16
            waveform = waveform if waveform.dtype == torch.float64 else waveform.float()
            spec = torch.stft(
                waveform, self.n_fft, hop_length=self.hop_length, window=self.window.to(waveform.dtype),
                center=True, pad_mode="reflect", return_complex=True,
            )  # (batch, freq, frames)
            return torch.matmul(self.filterbank.to(waveform.dtype), spec.real.square() + spec.imag.square())

    def compress(self, mel: torch.Tensor) -> torch.Tensor:
        """(batch, n_mels, frames) mel power -> (batch, frames, n_mels) log10(1 + gain * mel)."""
        with torch.autocast(device_type=mel.device.type, enabled=False):
            mel = mel if mel.dtype == torch.float64 else mel.float()
            return torch.log10(1.0 + self.log_gain * mel).transpose(1, 2)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.compress(self.mel_power(waveform))
