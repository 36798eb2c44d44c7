"""The TF checkpoint reader, the musicnn ports and their parity with musicnn's own TF outputs.

The reader is tested on tiny bundles written here by a writer that follows the same published
format (blocks with restart points and prefix-compressed keys, masked CRCs, the 48-byte footer,
BundleEntryProto values), and on the real checkpoints when the `musicnn` wheel is installed.
Parity: tests/data/musicnn_reference.npz holds musicnn's TF taggrams and penultimate features of
three generated signals (tools/make_musicnn_reference.py, run once with TensorFlow).
"""
from __future__ import annotations

import functools
import importlib.util
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from study.config import AudioConfig, ModelConfig, RunConfig
from study.models.musicnn import PATCH_FRAMES, MusicnnInput, TemporalFilters, build_musicnn, build_musicnn_vgg, trainable_names
from study.tfbundle import BundleError, TensorBundle, crc32c, read_bundle, unmask_crc

REFERENCE = Path(__file__).parent / "data" / "musicnn_reference.npz"
MODELS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
SIGNALS = ("tones_bursts", "loud_chirp", "quiet_noise")
HAS_MUSICNN = importlib.util.find_spec("musicnn") is not None
needs_musicnn = pytest.mark.skipif(not HAS_MUSICNN, reason="the optional musicnn wheel (pretrained weights) is not "
                                   "installed: pip install --no-deps musicnn")


# ---- a minimal tensor-bundle writer, for the reader's tests ---------------------------------------
def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    """A protobuf field: varint for ints, length-delimited for bytes."""
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3) + varint(value)


def mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def table_block(entries: list[tuple[bytes, bytes]], restart_interval: int = 2) -> bytes:
    out, restarts, previous = b"", [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        previous = key
    return out + b"".join(struct.pack("<I", r) for r in restarts or [0]) + struct.pack("<I", len(restarts or [0]))


def write_table(path, entries: list[tuple[bytes, bytes]], per_block: int = 3) -> None:
    data, index = b"", []

    def add_block(contents: bytes) -> bytes:
        nonlocal data
        handle = varint(len(data)) + varint(len(contents))
        data += contents + b"\x00" + struct.pack("<I", mask(crc32c(contents + b"\x00")))
        return handle

    for first in range(0, len(entries), per_block):
        chunk = entries[first:first + per_block]
        index.append((chunk[-1][0], add_block(table_block(chunk))))
    metaindex = add_block(table_block([]))
    index_handle = add_block(table_block(index, restart_interval=1))
    footer = (metaindex + index_handle).ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    path.write_bytes(data + footer)


DTYPES = {np.dtype(np.float32): 1, np.dtype(np.int64): 9, np.dtype(np.float16): 19, np.dtype(np.int32): 3}


def write_bundle(prefix: str, tensors: dict[str, np.ndarray]) -> None:
    """prefix.index + prefix.data-00000-of-00001, as TF's BundleWriter lays them out."""
    header = field(1, 1) + field(3, field(1, 1))  # num_shards 1, little-endian, version {producer 1}
    entries, shard = [(b"", header)], b""
    for name in sorted(tensors):
        array = np.asarray(tensors[name], order="C")
        raw = array.tobytes()
        shape = b"".join(field(2, field(1, size)) for size in array.shape)
        entry = (field(1, DTYPES[array.dtype]) + field(2, shape) + field(4, len(shard)) + field(5, len(raw))
                 + varint(6 << 3 | 5) + struct.pack("<I", mask(crc32c(raw))))
        entries.append((name.encode(), entry))
        shard += raw
    write_table(Path(prefix + ".index"), entries)
    Path(prefix + ".data-00000-of-00001").write_bytes(shard)


TINY = {
    "backend/dense/kernel": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "backend/dense/bias": np.array([-1.5, 0.0, 2.25, 1e-8], dtype=np.float32),
    "backend/conv/kernel": np.linspace(-1, 1, 2 * 3 * 1 * 5, dtype=np.float32).reshape(2, 3, 1, 5),
    "global_step": np.array(123456789012, dtype=np.int64),
    "half": np.array([0.5, -2.0, 65504.0], dtype=np.float16),
    "counts": np.arange(6, dtype=np.int32).reshape(2, 3, 1),
}


# ---- reader --------------------------------------------------------------------------------------
def test_crc32c_matches_published_check_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert unmask_crc(mask(0x12345678)) == 0x12345678


def test_crc32c_of_a_long_buffer_equals_the_bytewise_definition():
    data = np.random.default_rng(0).integers(0, 256, 70_001, dtype=np.uint8).tobytes()
    crc = 0xFFFFFFFF
    for byte in data[:70_001]:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    assert crc32c(data) == crc ^ 0xFFFFFFFF


def test_reader_returns_every_tensor_of_a_hand_written_bundle(tmp_path):
    write_bundle(f"{tmp_path}/model.ckpt", TINY)
    bundle = TensorBundle(tmp_path / "model.ckpt")
    assert sorted(bundle.names) == sorted(TINY)  # the header entry (empty key) is not a variable
    assert bundle.entry("backend/conv/kernel").shape == (2, 3, 1, 5)
    for name, expected in TINY.items():
        value = bundle.read(name)
        assert value.dtype == expected.dtype and value.shape == expected.shape
        np.testing.assert_array_equal(value, expected)


def test_reader_accepts_musicnn_style_folders_with_an_empty_stem(tmp_path):
    folder = tmp_path / "MTT_fake"
    folder.mkdir()
    write_bundle(f"{folder}/", {"w": TINY["backend/dense/bias"]})  # folder/.index, folder/.data-00000-of-00001
    assert (folder / ".index").is_file()
    np.testing.assert_array_equal(read_bundle(folder)["w"], TINY["backend/dense/bias"])


def test_reader_rejects_corrupt_data_and_foreign_files(tmp_path):
    write_bundle(f"{tmp_path}/ckpt", TINY)
    data = tmp_path / "ckpt.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[5] ^= 0x01  # inside backend/conv/kernel, the first tensor in sorted order
    data.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="checksum mismatch for 'backend/conv/kernel'"):
        TensorBundle(tmp_path / "ckpt").read("backend/conv/kernel")
    (tmp_path / "other.index").write_bytes(b"\x00" * 64)
    with pytest.raises(BundleError, match="not a TensorFlow checkpoint index"):
        TensorBundle(tmp_path / "other")
    with pytest.raises(BundleError, match="no checkpoint index"):
        TensorBundle(tmp_path / "missing")


# ---- architecture details that parity alone would not localise -------------------------------------
def test_temporal_filters_pad_like_tf_same_with_the_extra_zero_after():
    branch = TemporalFilters(frames=4, filters=1).eval()
    with torch.no_grad():
        branch.block.conv.weight.zero_()
        branch.block.conv.weight[0, 0, 0, 0] = 1.0  # picks the first tap: out[t] = x[t - 1] when 1 zero comes before
        branch.block.conv.bias.zero_()
        x = torch.arange(1.0, 7.0).reshape(1, 1, 6, 1)  # (batch, 1, frames, mels)
        out = branch.block.norm(branch.block.conv(branch.pad(x)).relu())
    scale = 1 / np.sqrt(1 + 1e-3)  # fresh BN in eval mode: (x - 0) / sqrt(1 + eps)
    np.testing.assert_allclose(out.flatten().numpy(), np.array([0, 1, 2, 3, 4, 5]) * scale, rtol=1e-6)


def test_musicnn_input_keeps_the_float16_mel_but_never_overflows():
    t = np.arange(16000) / 16000
    loud = (0.9 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    logmel = MusicnnInput(AudioConfig())(torch.from_numpy(loud)[None])[0].numpy()  # (frames, mels)
    assert np.isfinite(logmel).all() and logmel.max() > np.log10(10000 * 6.55)  # past float16's overflow point
    import librosa

    mel = librosa.feature.melspectrogram(y=loud, sr=16000, n_fft=512, hop_length=256, n_mels=96, pad_mode="reflect").T
    expected = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
    assert np.abs(logmel - expected).max() < 1e-3  # a float16 rounding tie may flip: at most ~2e-4 in the log


@pytest.mark.parametrize("build, embedding", [(build_musicnn, 200), (build_musicnn_vgg, 256)])
def test_ports_take_raw_waveforms_and_return_logits(build, embedding):
    model = build(ModelConfig(model="x", backend_filters=64, dense_units=200), n_tags=50).eval()
    samples = model.fixed_samples or 40_000
    with torch.no_grad():
        waveform = torch.randn(2, samples) * 0.1
        assert model(waveform).shape == (2, 50)
        assert model.embed(waveform).shape == (2, embedding)
    with pytest.raises(ValueError, match="too short"):
        model(torch.zeros(1, model.min_samples - 1))


# ---- the published checkpoints ----------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def published(name: str):
    from study.pretrained import load_pretrained

    return load_pretrained(name)


@needs_musicnn
def test_real_checkpoints_hold_the_expected_variables():
    from study.pretrained import musicnn_folder

    counts = {name: len(TensorBundle(musicnn_folder() / name).names) for name in MODELS}
    # musicnn: 8 convs, 11 batch norms, 2 dense, each with 2 Adam slots per trainable variable, + 2 powers
    assert counts == {"MTT_musicnn": 150, "MSD_musicnn": 150, "MTT_vgg": 86, "MSD_vgg": 86}


@needs_musicnn
@pytest.mark.parametrize("name", MODELS)
def test_param_count_equals_the_checkpoint_trainable_values(name):
    from study.models.tagger import count_params
    from study.pretrained import musicnn_folder

    variables = read_bundle(musicnn_folder() / name)
    model, _ = published(name)
    assert count_params(model) == sum(variables[k].size for k in trainable_names(variables))
    assert count_params(model) == (787_159 if "musicnn" in name else 605_748)


@needs_musicnn
@pytest.mark.parametrize("name", MODELS)
def test_parity_with_musicnn_tensorflow(name):
    from study.pretrained import taggram

    model, meta = published(name)
    reference = np.load(REFERENCE)
    assert len(meta["tags"]) == 50 and meta["tags"][0] == ("guitar" if name.startswith("MTT") else "rock")
    for signal in SIGNALS:
        audio, rate = soundfile.read(io.BytesIO(reference[f"signal__{signal}"].tobytes()), dtype="float32")
        assert rate == 16000
        gram, features = taggram(model, audio, features=True)
        expected_gram = reference[f"{name}__{signal}__taggram"]
        expected_features = reference[f"{name}__{signal}__penultimate"]
        assert gram.shape == expected_gram.shape and features.shape == expected_features.shape
        assert np.abs(gram - expected_gram).max() < 1e-4, signal
        assert np.abs(features - expected_features).max() / np.abs(expected_features).max() < 1e-3, signal


@needs_musicnn
def test_window_scores_follow_musicnn_frames_and_song_scores_average_them():
    from study.pretrained import song_scores, taggram, window_scores

    model, meta = published("MTT_musicnn")
    audio = np.random.default_rng(1).standard_normal(16000 * 7).astype(np.float32) * 0.1
    scores, starts = window_scores(model, audio, patch_samples=48_000, hop_samples=48_000)
    assert scores.shape == (2, 50)  # 7 s -> 438 frames -> two 187-frame patches, the rest dropped
    np.testing.assert_allclose(starts, [0.0, PATCH_FRAMES * 256 / 16000])
    np.testing.assert_allclose(scores, taggram(model, audio), atol=1e-6)
    np.testing.assert_allclose(song_scores(model, audio), scores.mean(axis=0), atol=1e-6)
    assert meta["window_scores"] is window_scores
    assert meta["reported"]["roc_auc"] == pytest.approx(0.9067, abs=1e-4)


def test_a_missing_wheel_is_one_clear_line(monkeypatch):
    from study import pretrained

    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(pretrained.PretrainedNotInstalled) as error:
        pretrained.load_pretrained("MTT_musicnn")
    message = str(error.value)
    assert "pip install --no-deps musicnn" in message and "\n" not in message
    with pytest.raises(ValueError, match="unknown pretrained model 'MTT_cnn'"):
        pretrained.load_pretrained("MTT_cnn")


def test_tag_lists_are_parsed_not_imported(tmp_path):
    from study.pretrained import read_labels

    config = tmp_path / "configuration.py"
    config.write_text("import tensorflow_that_is_not_installed\nSR = 16000\nMTT_LABELS = ['guitar', 'no vocal']\n")
    assert read_labels(config, "MTT_LABELS") == ["guitar", "no vocal"]
    with pytest.raises(ValueError, match="MSD_LABELS"):
        read_labels(config, "MSD_LABELS")


@needs_musicnn
def test_evaluate_pretrained_scores_a_collection_by_tag_name(tmp_path, monkeypatch):
    import pandas as pd

    import study.data
    from study.data.collection import Collection
    from study.data.files import FileLoader
    from study.experiment import evaluate_pretrained
    from study.pretrained import song_scores

    model, meta = published("MTT_vgg")
    tags = list(reversed(meta["tags"]))  # another order: labels must be matched by name
    rng = np.random.default_rng(3)
    ids = [f"clip{i}" for i in range(6)]
    for i, track in enumerate(ids):
        t = np.arange(52_000) / 16000
        audio = 0.2 * np.sin(2 * np.pi * (110 * (i + 1)) * t) + 0.02 * (i % 3) * rng.standard_normal(t.size)
        soundfile.write(tmp_path / f"{track}.wav", audio.astype(np.float32), 16000)
    labels = (rng.random((6, 50)) < 0.5).astype(np.float32)
    labels[0], labels[1] = 1, 0  # every tag has a positive and a negative clip
    tracks = pd.DataFrame({"split": "test", "artist": ids, "path": [f"{t}.wav" for t in ids]}, index=pd.Index(ids, name="track_id"))
    collection = Collection("mtt", tracks, tags, labels, FileLoader(tmp_path))
    monkeypatch.setattr(study.data, "load_collection", lambda cfg: collection)
    cfg = RunConfig.from_flat("smoke", dataset="mtt", cache_dir=str(tmp_path / "cache"), bootstrap_samples=50)
    run = evaluate_pretrained("MTT_vgg", cfg, results_dir=tmp_path / "results")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_test"] == 6 and 0 <= metrics["overall"]["roc_auc"] <= 1
    config = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert (config.model.model, config.data.dataset, config.eval.bootstrap_samples) == ("musicnn_vgg", "mtt", 50)
    assert metrics["reported"]["roc_auc"] == pytest.approx(0.9030, abs=1e-4)
    with np.load(run / "predictions.npz") as saved:
        first = song_scores(model, soundfile.read(tmp_path / "clip0.wav", dtype="float32")[0])
        np.testing.assert_allclose(saved["y_score"][0], first[::-1], atol=1e-5)  # reversed tag order


def test_a_collection_with_other_tags_is_refused_before_its_audio_is_decoded(tmp_path, monkeypatch):
    import pandas as pd

    from study import experiment, pretrained
    from study.data.collection import Collection

    tracks = pd.DataFrame({"split": ["test"], "artist": [""], "path": ["a.mp3"]}, index=pd.Index(["a"], name="track_id"))
    jamendo = Collection("jamendo", tracks, ["genre---rock", "mood/theme---happy"], np.ones((1, 2)), loader=None)
    monkeypatch.setattr(experiment.data, "load_collection", lambda cfg: jamendo)
    monkeypatch.setattr(pretrained, "load_pretrained", lambda name, device: (None, {"tags": ["guitar", "rock"]}))

    def no_decoding(*args, **kwargs):
        raise AssertionError("the collection was decoded before the tags were compared")

    monkeypatch.setattr(experiment, "ensure_cache", no_decoding)
    cfg = RunConfig.from_flat("smoke", dataset="jamendo", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="MTT_musicnn was trained on other tags.*genre---rock"):
        experiment.evaluate_pretrained("MTT_musicnn", cfg, results_dir=tmp_path / "results")
