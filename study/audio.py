"""Audio decoding to 16 kHz mono, and the log-mel spectrogram computed in torch.

The log-mel runs inside the model, batched on the model's device, with librosa's own mel
filterbank so that it equals ``librosa.feature.melspectrogram`` followed by the authors'
``log10(1 + 10000 * mel)`` (docs/paper-details.md, "Input representation").
"""
from __future__ import annotations

import warnings
from pathlib import Path

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

    soundfile (libsndfile: wav, flac, ogg, mp3) first; librosa's audioread fallback for the rest.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        data = data.mean(axis=1)
    except Exception as first_error:  # libsndfile cannot read it: try audioread through librosa
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data, rate = librosa.load(str(path), sr=None, mono=True)
        except Exception:
            raise AudioError(f"{path}: cannot decode audio (libsndfile: {first_error}; audioread failed too)") from None
    if data.size == 0:
        raise AudioError(f"{path}: the file decodes to no samples")
    if rate != sample_rate:
        data = librosa.resample(data, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    data = np.ascontiguousarray(data, dtype=np.float32)
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: decoded samples contain NaN or infinity")
    return data


def check_waveform(batch: torch.Tensor, min_samples: int, what: str = "model input") -> None:
    """Raise a clear error for the wrong rank, a too-short input or non-finite samples."""
    if batch.dim() != 2:
        raise ValueError(f"{what}: expected a batch of waveforms shaped (batch, samples), got shape {tuple(batch.shape)}")
    if batch.shape[1] < min_samples:
        raise ValueError(
            f"{what}: {batch.shape[1]} samples is too short; this model needs at least {min_samples} samples"
        )
    if not torch.isfinite(batch).all():
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
