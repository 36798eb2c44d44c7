"""Make tests/data/musicnn_reference.npz with musicnn's own code and TensorFlow.

Run ONCE, by hand, in a throwaway environment outside the repository (never by CI)::

    python3 -m venv /work/tfenv
    /work/tfenv/bin/pip install tensorflow-cpu tf-keras 'numpy<2' librosa soundfile
    /work/tfenv/bin/pip install --no-deps musicnn
    /work/tfenv/bin/python tools/make_musicnn_reference.py

It generates three short deterministic signals, tags them with ``musicnn.extractor.extractor``
for MTT_musicnn, MSD_musicnn, MTT_vgg and MSD_vgg, and stores each model's taggram (sigmoid per
3 s patch) and penultimate features (musicnn: the 200-unit dense layer after its batch norm;
vgg: pool5 flattened, the dense layer's input), the signals themselves (FLAC bytes: lossless
and small) and the seconds musicnn's TF code takes to tag a 30 s song with MTT_musicnn.

One adjustment: librosa 0.10 changed the STFT's default ``pad_mode`` from 'reflect' to 'constant';
musicnn (2019) was written for, and its weights trained on, the old default, so the script passes
``pad_mode='reflect'`` to librosa's mel spectrogram (study.audio.LogMel pads the same way).
And one work-around: extractor() feeds one patch per session run and, from the second run on,
appends the FIRST patch's penultimate features again (it concatenates ``penultimate_`` where it
unpacked ``backend_``), so the features are taken with every patch in one run (BATCH_SIZE raised).
Otherwise the package's code runs unchanged: under NumPy 1, ``10000 * float16_mel`` is promoted to float32,
so the log-mel is finite (the NumPy 2 float16 overflow, docs/paper-details.md, does not happen here); the script
checks that, and records how many values NumPy 2's float16 arithmetic would have overflowed.
"""
from __future__ import annotations

import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.layers need Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

SAMPLE_RATE = 16000
MODELS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
OUTPUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "musicnn_reference.npz"


def tone(freq: float, seconds: float, harmonics: int = 4) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, harmonics + 1))


def make_signals() -> dict[str, np.ndarray]:
    """Three deterministic int16 signals: 6.5 s (two patches and a dropped remainder), 3 s, 3 s."""
    rng = np.random.RandomState(7)
    # 1) a melody of harmonic tones with decaying noise bursts on every half second
    notes = (220.0, 277.2, 329.6, 440.0, 392.0, 329.6, 261.6, 196.0, 246.9, 293.7, 349.2, 440.0, 523.3)
    melody = np.concatenate([tone(f, 0.5) * np.hanning(SAMPLE_RATE // 2) for f in notes])
    bursts = rng.randn(melody.size) * np.tile(np.exp(-np.arange(SAMPLE_RATE // 2) / 200.0), len(notes))
    tones_bursts = 0.2 * melody + 0.15 * bursts
    # 2) a loud exponential chirp 60 Hz -> 6 kHz with clicks: mel power far above 6.55 (float16 overflow)
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    chirp = np.sin(2 * np.pi * 60.0 * 3 / np.log(100.0) * (100.0 ** (t / 3) - 1))
    clicks = np.zeros_like(t)
    clicks[::SAMPLE_RATE // 8] = 1.0
    loud_chirp = 0.8 * chirp + 0.15 * clicks
    # 3) quiet coloured noise with a slow tremolo: mel values in float16's subnormal range
    noise = np.cumsum(rng.randn(3 * SAMPLE_RATE)) * 0.01
    noise -= np.convolve(noise, np.ones(401) / 401, mode="same")
    quiet_noise = 0.02 * noise * (1 + 0.5 * np.sin(2 * np.pi * 2.0 * t)) + 0.003 * tone(880.0, 3)
    signals = {"tones_bursts": tones_bursts, "loud_chirp": loud_chirp, "quiet_noise": quiet_noise}
    return {name: np.round(np.clip(x, -1, 1) * 32767).astype(np.int16) for name, x in signals.items()}


def flac_bytes(pcm: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def restore_reflect_padding() -> None:
    """Make librosa.feature.melspectrogram pad with 'reflect' by default, as librosa < 0.10 did."""
    import functools

    import librosa

    original = librosa.feature.melspectrogram

    @functools.wraps(original)
    def melspectrogram(*args, **kwargs):
        kwargs.setdefault("pad_mode", "reflect")
        return original(*args, **kwargs)

    librosa.feature.melspectrogram = melspectrogram


def numpy2_overflows(path: str) -> int:
    """How many log-mel values NumPy 2's float16 product would make infinite (the NumPy 2 overflow)."""
    import librosa

    audio, _ = librosa.load(path, sr=SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, hop_length=256, n_fft=512, n_mels=96).astype(np.float16)
    with np.errstate(over="ignore"):
        return int(np.isinf(np.float16(10000) * mel).sum())


def main() -> int:
    import librosa
    import tensorflow as tf
    import tf_keras
    from musicnn import configuration as musicnn_configuration
    from musicnn import extractor as musicnn_extractor

    restore_reflect_padding()
    out: dict[str, np.ndarray] = {}
    signals = make_signals()
    overflow: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, pcm in signals.items():
            paths[name] = os.path.join(tmp, f"{name}.wav")
            soundfile.write(paths[name], pcm, SAMPLE_RATE, subtype="PCM_16")
            out[f"signal__{name}"] = flac_bytes(pcm)
            batch, _ = musicnn_extractor.batch_data(paths[name], 187, 187)
            assert batch.dtype == np.float32 and np.isfinite(batch).all(), "expected NumPy 1's float32 promotion"
            overflow[name] = numpy2_overflows(paths[name])
        musicnn_configuration.BATCH_SIZE = 1024  # every patch in the first run (see the module docstring)
        for model in MODELS:
            for name, path in paths.items():
                taggram, _labels, features = musicnn_extractor.extractor(path, model=model, input_length=3,
                                                                         input_overlap=False, extract_features=True)
                if "vgg" in model:  # pool5 per patch, (2n, 1, 128) squeezed to (2n, 128) -> TF's flatten (n, 256)
                    penultimate = features["pool5"].reshape(len(taggram), -1)
                else:
                    penultimate = features["penultimate"]
                out[f"{model}__{name}__taggram"] = taggram.astype(np.float32)
                out[f"{model}__{name}__penultimate"] = penultimate.astype(np.float32)
                print(model, name, taggram.shape, penultimate.shape)

        musicnn_configuration.BATCH_SIZE = 1  # as shipped
        # time musicnn's own code tagging a 30 s song, end to end (graph, restore, decode, log-mel, tags)
        song = os.path.join(tmp, "song30.wav")
        rng = np.random.RandomState(30)
        t = np.arange(30 * SAMPLE_RATE) / SAMPLE_RATE
        soundfile.write(song, 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.randn(t.size), SAMPLE_RATE, subtype="PCM_16")
        musicnn_extractor.extractor(song, model="MTT_musicnn", extract_features=False)  # warm-up: imports, kernels
        seconds = []
        for _ in range(5):
            start = time.perf_counter()
            musicnn_extractor.extractor(song, model="MTT_musicnn", extract_features=False)
            seconds.append(time.perf_counter() - start)

    import musicnn

    meta = {
        "made_by": "tools/make_musicnn_reference.py with musicnn.extractor.extractor (input_length=3, no overlap)",
        "librosa_pad_mode": "reflect (librosa < 0.10 default, restored)",
        "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
        "tensorflow": tf.__version__, "tf_keras": tf_keras.__version__, "numpy": np.__version__,
        "librosa": librosa.__version__, "soundfile": soundfile.__version__,
        "musicnn": getattr(musicnn, "__version__", "0.1.0 (wheel)"), "TF_USE_LEGACY_KERAS": os.environ["TF_USE_LEGACY_KERAS"],
        "tf_seconds_tag_30s_runs": seconds, "numpy2_float16_overflows": overflow,
        "signals": {name: len(pcm) for name, pcm in signals.items()},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out["tf_seconds_tag_30s"] = np.float64(np.median(seconds))
    out["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT, **out)
    print(json.dumps(meta, indent=2))
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
