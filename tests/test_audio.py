"""study.audio: log-mel parity with librosa, decoding of tiny generated files, clear errors."""
from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile
import torch

from study.audio import AudioError, LogMel, check_waveform, load_audio, n_frames
from study.config import AudioConfig

RATE = 16_000


def tone(seconds: float, frequency: float = 440.0, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def librosa_logmel(audio: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """The authors' input: librosa's mel spectrogram (reflect padding) + log10(1 + 10000 mel), (frames, mels)."""
    mel = librosa.feature.melspectrogram(
        y=audio, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
        fmin=cfg.fmin, fmax=cfg.fmax, pad_mode="reflect",
    )
    return np.log10(1 + cfg.log_gain * mel).T


def dominant_frequency(audio: np.ndarray, rate: int = RATE) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(audio)))) * rate / len(audio)


# ---- log-mel parity -------------------------------------------------------------------------------
@pytest.mark.parametrize("samples", [48_000, 16_001, 1_792])
def test_logmel_matches_librosa(samples: int) -> None:
    cfg = AudioConfig()
    rng = np.random.default_rng(samples)
    batch = np.stack([
        tone(samples / RATE, 440.0)[:samples] + 0.05 * rng.standard_normal(samples).astype(np.float32),
        0.01 * rng.standard_normal(samples).astype(np.float32),  # quiet: the log's near-linear region
    ])
    ours = LogMel(cfg)(torch.from_numpy(batch)).numpy()
    assert ours.shape == (2, n_frames(samples, cfg.hop_length), cfg.n_mels)
    for row, audio in enumerate(batch):
        np.testing.assert_allclose(ours[row], librosa_logmel(audio, cfg), rtol=0, atol=2e-5)


def test_logmel_frames_and_float32_under_autocast() -> None:
    logmel = LogMel(AudioConfig())
    assert n_frames(48_000) == 1 + 48_000 // 256 == 188  # a centred STFT of 3 s
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = logmel(torch.from_numpy(tone(1.0))[None])
    assert out.dtype == torch.float32 and out.shape == (1, 63, 96)


def test_logmel_follows_the_audio_config() -> None:
    cfg = AudioConfig(n_mels=64, hop_length=160)
    audio = tone(0.5, 1000.0)
    ours = LogMel(cfg)(torch.from_numpy(audio)[None])[0].numpy()
    np.testing.assert_allclose(ours, librosa_logmel(audio, cfg), rtol=0, atol=2e-5)


# ---- decoding ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extension, tolerance", [("wav", 1e-4), ("flac", 1e-4), ("mp3", 0.05)])
def test_load_audio_decodes_16k_mono_files(tmp_path: Path, extension: str, tolerance: float) -> None:
    original = tone(1.0)
    path = tmp_path / f"clip.{extension}"
    soundfile.write(str(path), original, RATE)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - len(original)) <= 1152  # mp3 may pad up to one frame
    assert dominant_frequency(audio) == pytest.approx(440.0, abs=2.0)
    shared = min(len(audio), len(original))
    assert np.abs(audio[:shared] - original[:shared]).max() < tolerance


def test_load_audio_mixes_stereo_44k1_down_to_16k_mono(tmp_path: Path) -> None:
    rate = 44_100
    left, right = tone(1.0, 440.0, rate, amplitude=0.6), tone(1.0, 440.0, rate, amplitude=0.2)
    path = tmp_path / "stereo.flac"
    soundfile.write(str(path), np.stack([left, right], axis=1), rate)
    audio = load_audio(path)
    assert len(audio) == pytest.approx(RATE, abs=2)  # one second at 16 kHz
    assert dominant_frequency(audio) == pytest.approx(440.0, abs=2.0)
    rms = float(np.sqrt(np.mean(audio[500:-500] ** 2)))
    assert rms == pytest.approx(0.4 / np.sqrt(2), rel=0.01)  # the mean of the channels, not their sum


def test_load_audio_resamples_to_another_rate(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    soundfile.write(str(path), tone(1.0, 300.0, 22_050), 22_050)
    audio = load_audio(path, sample_rate=8_000)
    assert len(audio) == pytest.approx(8_000, abs=2)
    assert dominant_frequency(audio, 8_000) == pytest.approx(300.0, abs=2.0)


@pytest.mark.parametrize("name, content, problem", [("broken.mp3", b"not audio at all" * 64, "not an audio file"),
                                                    ("broken.wav", b"RIFF\0\0" + b"x" * 400, "damaged WAV file")])
def test_corrupt_file_raises_audio_error_naming_the_path(tmp_path: Path, name: str, content: bytes,
                                                         problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError, match=problem) as error:
        load_audio(path)
    assert str(path) in str(error.value)


def test_missing_and_empty_files_raise_audio_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.wav"
    with pytest.raises(AudioError, match="no such audio file") as error:
        load_audio(missing)
    assert str(missing) in str(error.value)
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(empty)


def test_check_waveform_names_each_problem() -> None:
    with pytest.raises(ValueError, match=r"clip: expected .*\(batch, samples\)"):
        check_waveform(torch.zeros(10), 5, what="clip")
    with pytest.raises(ValueError, match="3 samples is too short.*at least 5 samples"):
        check_waveform(torch.zeros(1, 3), 5)
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_waveform(torch.tensor([[0.0, float("nan"), 0.0, 0.0, 0.0]]), 5)
    check_waveform(torch.zeros(2, 5), 5)  # the smallest accepted input passes
