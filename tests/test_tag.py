"""`study tag`: top-k tags, taggram, thresholds, output formats, unreadable files, any input format."""
from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from torch import nn

import study.checkpoint
from study import tag
from study.cli import main
from study.config import preset_config

SR = 16000
TAGS = ["rock", "piano", "loud", "acoustic"]


class TinyTagger(nn.Module):
    """Logits = bias + weight x log energy of the window, so louder windows score differently."""

    min_samples = 400
    fixed_samples = None

    def __init__(self, n_tags: int = 4) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([2.0, 0.0, -1.0, 1.0][:n_tags]))
        self.weight = nn.Parameter(torch.tensor([0.0, 0.0, 1.0, -0.5][:n_tags]))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        assert waveform.dim() == 2 and waveform.shape[1] >= self.min_samples
        energy = torch.log(waveform.square().mean(dim=1, keepdim=True) + 1e-6)  # (batch, 1)
        return self.bias + self.weight * energy  # (batch, n_tags)


def _meta(thresholds: dict | None = None, patch_seconds: float = 1.0) -> dict:
    cfg = preset_config("smoke").with_overrides(eval_patch_seconds=patch_seconds, eval_hop_seconds=patch_seconds)
    return {"tags": TAGS, "regression_tags": ["acoustic"], "config": cfg.to_dict(),
            "thresholds": thresholds if thresholds is not None else {t: None for t in TAGS}}


def _ramp(seconds: float, rate: int = SR) -> np.ndarray:
    """A tone whose amplitude grows over time: later windows are louder."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.linspace(0.01, 0.9, len(t)) * np.sin(2 * np.pi * 330 * t)).astype(np.float32)


@pytest.fixture
def audio_files(tmp_path):
    mono = tmp_path / "mono.wav"
    soundfile.write(mono, _ramp(3.0), SR)
    stereo = tmp_path / "stereo.flac"  # 44.1 kHz, two channels
    left = _ramp(2.5, 44100)
    soundfile.write(stereo, np.stack([left, 0.5 * left], axis=1), 44100)
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"this is not audio at all" * 20)
    return {"mono": mono, "stereo": stereo, "broken": broken, "missing": tmp_path / "missing.ogg"}


def _expected_clip_scores(model: nn.Module, audio: np.ndarray, patch: int, hop: int) -> np.ndarray:
    starts = range(0, len(audio) - patch + 1, hop)
    batch = torch.from_numpy(np.stack([audio[s:s + patch] for s in starts]))
    with torch.no_grad():
        return torch.sigmoid(model(batch)).mean(dim=0).numpy()


def test_top_k_is_ordered_by_mean_window_score():
    model, audio = TinyTagger(), _ramp(3.0)
    result = tag.tag_audio(audio, model, _meta(), top_k=3)
    expected = _expected_clip_scores(model, audio, SR, SR)
    assert [e["tag"] for e in result["tags"]] == [TAGS[i] for i in np.argsort(-expected)[:3]]
    np.testing.assert_allclose([e["score"] for e in result["tags"]], np.sort(expected)[::-1][:3], rtol=1e-5)
    assert result["n_windows"] == 3 and result["duration"] == pytest.approx(3.0)
    assert len(tag.tag_audio(audio, model, _meta(), top_k=0)["tags"]) == len(TAGS)  # 0 = every tag


def test_taggram_has_one_row_per_window_and_follows_the_audio():
    model, audio = TinyTagger(), _ramp(3.0)
    result = tag.tag_audio(audio, model, _meta(), overlap=0.5, taggram=True)  # 1 s windows, 0.5 s hop
    gram = result["taggram"]
    scores = np.array(gram["scores"])
    assert scores.shape == (5, len(TAGS)) and gram["tags"] == TAGS
    assert gram["start"] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert gram["end"] == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0])
    assert np.all(np.diff(scores[:, TAGS.index("loud")]) > 0)  # louder windows, higher 'loud'
    np.testing.assert_allclose(scores.mean(axis=0), _expected_clip_scores(model, audio, SR, SR // 2), rtol=1e-5)


def test_thresholds_turn_scores_into_yes_no():
    model, audio = TinyTagger(), _ramp(3.0)
    thresholds = {"rock": 0.5, "piano": 0.9, "loud": 0.01, "acoustic": None}
    result = tag.tag_audio(audio, model, _meta(thresholds), top_k=0, use_thresholds=True)
    decisions = {e["tag"]: e["decision"] for e in result["tags"]}
    assert decisions == {"rock": True, "piano": False, "loud": True, "acoustic": None}  # regression: no decision
    assert set(result["positive_tags"]) == {"rock", "loud"}
    with pytest.raises(ValueError, match="no tuned decision thresholds"):
        tag.tag_audio(audio, model, _meta(), use_thresholds=True)


def test_a_clip_shorter_than_a_patch_is_one_window_of_itself():
    result = tag.tag_audio(_ramp(0.3), TinyTagger(), _meta(patch_seconds=15.0), taggram=True)
    assert result["n_windows"] == 1 and result["patch_seconds"] == pytest.approx(0.3)


def test_unreadable_files_are_reported_and_the_rest_tagged(audio_files):
    paths = [audio_files["broken"], audio_files["mono"], audio_files["missing"], audio_files["stereo"]]
    tagged = tag.tag_files(paths, TinyTagger(), _meta(), top_k=2)
    assert [("error" in r) for r in tagged] == [True, False, True, False]
    assert str(audio_files["broken"]) in tagged[0]["error"]
    assert str(audio_files["missing"]) in tagged[2]["error"]
    stereo = tagged[3]
    assert stereo["duration"] == pytest.approx(2.5, abs=1e-3) and stereo["n_windows"] == 2  # 44.1k stereo -> 16k mono


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(["tag", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    """A checkpoint dict written by hand with the contract's keys, holding a TinyTagger."""
    model = TinyTagger()
    meta = _meta({"rock": 0.5, "piano": 0.9, "loud": 0.01, "acoustic": None})
    state = {**meta, "model_state": model.state_dict(), "optimizer_state": {}, "epoch": 3, "best_metric": 0.8,
             "rng_state": {}, "history": []}
    path = tmp_path / "best.pt"
    torch.save(state, path)
    build = lambda model_cfg, *, n_tags, audio_cfg: TinyTagger(n_tags)  # noqa: E731 - the model factory's stand-in
    monkeypatch.setattr(study.checkpoint, "load_tagger", functools.partial(study.checkpoint.load_tagger, build=build))
    return path


def test_cli_json_and_exit_code_with_a_bad_file(audio_files, checkpoint, capsys):
    code, out, err = _cli([audio_files["mono"], audio_files["broken"], audio_files["stereo"],
                           "--checkpoint", checkpoint, "--top-k", "2", "--device", "cpu"], capsys)
    assert code == 1
    assert f"error: {audio_files['broken']}" in err and str(audio_files["mono"]) not in err
    results = json.loads(out)
    assert [r["path"] for r in results] == [str(audio_files["mono"]), str(audio_files["stereo"])]
    assert all(len(r["tags"]) == 2 for r in results)


def test_cli_csv_with_taggram_and_thresholds_to_a_file(audio_files, checkpoint, capsys, tmp_path):
    output = tmp_path / "tags.csv"
    code, out, err = _cli([audio_files["mono"], "--checkpoint", checkpoint, "--format", "csv", "--taggram",
                           "--thresholds", "--top-k", "3", "--output", output], capsys)
    assert code == 0 and out == "" and "error" not in err
    table = pd.read_csv(output)
    clip = table[table["section"] == "clip"]
    assert clip["rank"].tolist() == [1, 2, 3] and clip["score"].is_monotonic_decreasing
    assert clip.set_index("tag").loc["rock", "decision"] in (True, "True")
    windows = table[table["section"] == "window"]
    assert len(windows) == 3 * len(TAGS) and sorted(windows["start"].unique()) == [0.0, 1.0, 2.0]


def test_cli_refuses_bad_options(audio_files, checkpoint, capsys):
    code, _, err = _cli([audio_files["mono"], "--checkpoint", checkpoint, "--overlap", "1.0"], capsys)
    assert code == 2 and "--overlap" in err
    code, _, err = _cli([audio_files["mono"], "--checkpoint", checkpoint.parent / "none.pt"], capsys)
    assert code == 2 and "none.pt" in err
    code, _, err = _cli([audio_files["mono"], "--pretrained", "no-such-model"], capsys)
    assert code == 2 and "no-such-model" in err


def _load_tiny(device):
    return TinyTagger().to(device), _meta({"rock": 0.5, "piano": 0.9, "loud": 0.01, "acoustic": None})


def test_pretrained_name_is_loaded_by_study_pretrained(audio_files, capsys, monkeypatch):
    import study.pretrained

    monkeypatch.setattr(study.pretrained, "load_pretrained",
                        lambda name, device: _load_tiny(device) if name == "tiny" else pytest.fail(name))
    code, out, _ = _cli([audio_files["mono"], "--pretrained", "tiny", "--thresholds", "--top-k", "1"], capsys)
    assert code == 0 and json.loads(out)[0]["positive_tags"] == ["rock", "loud"]


def test_a_model_may_bring_its_own_windows():
    calls = []

    def window_scores(model, audio, *, patch_samples, hop_samples, batch_size):
        calls.append((patch_samples, hop_samples))
        return np.array([[0.9, 0.1, 0.2, 0.3], [0.7, 0.3, 0.2, 0.3]]), np.array([0.0, 1.5])

    meta = {**_meta(), "window_scores": window_scores}
    result = tag.tag_audio(_ramp(0.5), TinyTagger(), meta, patch_seconds=3.0, taggram=True)
    assert calls == [(3 * SR, 3 * SR)]  # the patch is not shrunk to the short clip for such a model
    assert result["tags"][0] == {"tag": "rock", "score": pytest.approx(0.8), "kind": "classification"}
    assert result["taggram"]["start"] == [0.0, 1.5] and result["taggram"]["end"] == [3.0, 4.5]


def test_the_command_line_starts_without_the_libraries_only_some_commands_need():
    """`study tag` pays for torch and the package, not for scipy's filters, scikit-learn or joblib, which
    only the corpus generator and the GBT baseline use (they are imported where used)."""
    probe = ("import sys; from study.cli import build_parser; build_parser(); "
             "print(' '.join(m for m in ('scipy.signal', 'sklearn', 'joblib') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
