"""Fault injection: for each fault a user can meet, what they see and that nothing computed is lost.

| fault | what the user sees | what is kept |
|---|---|---|
| a mistake on the command line (unknown preset, dataset, model, split convention, pretrained name; missing or absent data_root; a value of the wrong type; a missing checkpoint or grid) | one line, `study <command>: error: <what> — <what to do>`, exit status 2 | nothing was started |
| a bug | its traceback | |
| Ctrl-C or a kill during training | one line, exit status 130; the same command resumes (`resuming ... after epoch N`) | every finished epoch |
| a kill while a run folder is written | the previous complete run, or no run; never half of one | the previous run |
| a kill while the audio cache is written (a torn tail) | the next build goes on | every committed chunk |
| an unreadable audio file (empty, not audio, truncated, needs ffmpeg) | one line naming the file and what is wrong; the decoder's own notes stay off the terminal | every other file: cached, or tagged |
| `study tag` on a folder, an unmatched pattern, silence, a clip shorter than a window, a corpus-trained model | a count; "no file matches"; a warning (also in the JSON/CSV `warnings` field); one warning that the model knows only synthetic music | every other input is tagged |
| output without a terminal; a finished study rerun | no progress bars; executed notebooks left untouched | |
| two workers on one store; a worker killed holding a run's lock; a cache builder killed while another waits | the second waits or leaves the point to the first, naming it; "took over the lock of pid N" | every run either writer stored; the cache's committed chunks |

The mechanics under these faults are tested where they live (bit-exact resume in test_train.py, the
atomic run folder in test_results.py, the cache's torn tail and SIGKILL in test_cache.py, many writers
of one store in test_shared_store.py, a batch's SIGTERM in test_scheduler.py); the README's commands in
test_readme.py.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

import study.audio
import study.checkpoint
import study.data.cli
import study.experiment
from study import batch, results
from study.audio import AudioError, load_audio
from study.checkpoint import LAST, load_checkpoint
from study.cli import INTERRUPTED_STATUS, USER_ERROR_STATUS, main
from study.config import RunConfig, preset_config
from study.data.cache import FAILED_FILE, INDEX_FILE, SAMPLES_FILE, AudioCache
from study.data.collection import Collection
from study.data.files import FileLoader
from study.evaluate import predict_clips
from study.progress import progress_bar
from study.tag import tag_audio
from tests.test_batch import write_notebook
from tests.test_cache import ToneLoader, assert_equal_to_tones, logged, tones
from tests.test_results import _write
from tests.test_tag import TAGS as TAG_TAGS
from tests.test_tag import TinyTagger, _meta
from tests.tiny import run_tiny

RATE = 16000


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * 330 * t) * np.linspace(0.2, 1.0, len(t))).astype(np.float32)


def run_study(argv: list, capsys) -> tuple[int, str, str]:
    """`study ARGV...` in this process: (exit status, stdout, stderr)."""
    try:
        status = main([str(arg) for arg in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


# ---- a mistake on the command line, and a bug ----------------------------------------------------
USER_MISTAKES = {
    "no data_root": (["corpus", "--dataset", "mtt"], "dataset 'mtt' needs data_root — give --data_root"),
    "absent data_root": (["corpus", "--dataset", "mtt", "--data_root", "{tmp}/nowhere"], "nowhere does not exist — "),
    "split convention": (["corpus", "--dataset", "mtt", "--data_root", "{tmp}", "--split_convention", "folds"],
                         "unknown split_convention 'folds' — use one of pons2018, clean"),
    "preset": (["corpus", "--preset", "fast"], "unknown preset 'fast' — use smoke, default or paper"),
    "dataset": (["corpus", "--dataset", "fma"], "unknown dataset 'fma' — use one of catalogue, corpus"),
    "type": (["corpus", "--train_size", "many"], "'train_size' expects int, got 'many' — see `study corpus --help`"),
    "model": (["train", "--preset", "smoke", "--model", "cnn", "--corpus_size", "100", "--clip_seconds", "1",
               "--cache_dir", "{tmp}/cache", "--results-dir", "{tmp}/results"], "unknown model 'cnn' — use one of"),
    "checkpoint": (["evaluate", "--checkpoint", "{tmp}/best.pt"], "best.pt: no checkpoint there — check the path"),
    "training field with a checkpoint": (["evaluate", "--checkpoint", "{tmp}/best.pt", "--seed", "3"],
                                         "so seed cannot be given — give only evaluation fields"),
    "pretrained": (["evaluate", "--pretrained", "MTT_cnn"], "unknown pretrained model 'MTT_cnn' — use one of MTT_musicnn"),
    "tag checkpoint": (["tag", "{tmp}/song.wav", "--checkpoint", "{tmp}/best.pt"], "no such checkpoint file — check"),
    "tag overlap": (["tag", "{tmp}/song.wav", "--pretrained", "MTT_musicnn", "--overlap", "1"], "--overlap must be"),
    "grid": (["batch", "{tmp}/grid.yaml"], "grid.yaml does not exist — give a grid such as grids/default.yaml"),
    "run preset": (["run", "--preset", "fast"], "no grid file"),
}


@pytest.mark.parametrize("mistake", USER_MISTAKES)
def test_a_user_mistake_is_one_line_with_what_to_do_and_exit_status_2(mistake, tmp_path, capsys):
    argv, expected = USER_MISTAKES[mistake]
    status, out, err = run_study([arg.format(tmp=tmp_path) for arg in argv], capsys)
    assert status == USER_ERROR_STATUS
    assert err.count("\n") == 1 and err.startswith(f"study {argv[0]}: error: ") and " — " in err, err
    assert expected in err and "Traceback" not in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        return np.arange(3).reshape(2, 2)  # numpy's ValueError: a bug, not the user's mistake

    monkeypatch.setattr(study.data.cli, "_corpus_command", broken)
    with pytest.raises(ValueError, match="reshape"):
        main(["corpus"])


# ---- Ctrl-C or a kill during training --------------------------------------------------------------
def test_an_interrupted_training_says_how_to_go_on_and_resumes_from_its_last_epoch(tmp_path, monkeypatch, capsys):
    before_kill, log = [], []

    def kill_after_epoch_two(epoch, record):
        before_kill.append(dict(record))
        if epoch == 2:
            raise KeyboardInterrupt

    def tiny_experiment(cfg, *, results_dir, force, on_epoch_end=None):  # `study train`, on the tiny stand-ins
        kill = kill_after_epoch_two if not before_kill else None
        return run_tiny(tmp_path / "checkpoints", on_epoch_end=kill, log=log.append)

    monkeypatch.setattr(study.experiment, "run_experiment", tiny_experiment)
    status, _, err = run_study(["train", "--preset", "smoke"], capsys)
    assert status == INTERRUPTED_STATUS and err.count("\n") == 1
    assert "study train: interrupted — run the same command again" in err

    assert run_study(["train", "--preset", "smoke"], capsys)[0] == 0
    resumed = [line for line in log if line.startswith("resuming")]
    assert len(resumed) == 1 and "after epoch 2" in resumed[0]
    kept = load_checkpoint(tmp_path / "checkpoints" / LAST)["progress"]["history"]
    assert [row["epoch"] for row in kept] == [1, 2, 3, 4]
    for computed, stored in zip(before_kill, kept[:2]):  # the epochs before the kill are kept as computed
        assert stored["train_loss"] == computed["train_loss"] and stored["valid_loss"] == computed["valid_loss"]


# ---- a kill while a run folder is written -------------------------------------------------------------
def test_a_kill_while_a_run_is_rewritten_keeps_the_previous_complete_run(tmp_path, monkeypatch):
    cfg = preset_config("smoke")
    _write(tmp_path, cfg, 0.8)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(results.np, "savez_compressed", killed)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path, cfg, 0.9, overwrite=True)
    runs = results.load_runs(tmp_path)
    assert runs["run_id"].tolist() == [cfg.run_id] and runs["roc_auc"].tolist() == [pytest.approx(0.8)]
    assert [path.name for path in (tmp_path / "runs").iterdir()] == [cfg.run_id]


# ---- a kill while the audio cache is written ------------------------------------------------------------
def test_a_torn_cache_tail_costs_only_the_tracks_of_the_torn_chunk(tmp_path, capsys):
    folder = tmp_path / "cache"
    AudioCache.build(tones(8), folder, workers=1, progress=False, chunk_tracks=2)
    index = folder / INDEX_FILE
    lines = index.read_text().splitlines(keepends=True)
    index.write_text("".join(lines[:6]) + lines[6][:5])  # the kill left half an index line...
    with open(folder / SAMPLES_FILE, "ab") as samples:
        samples.write(os.urandom(1001))  # ...and samples no index line points to
    decoded = tmp_path / "decoded.txt"
    cache = AudioCache.build(tones(8, ToneLoader(log=decoded)), folder, workers=1, progress=False)
    assert sorted(logged(decoded)) == ["t6", "t7"]  # the six committed tracks are not decoded again
    assert_equal_to_tones(cache, [f"t{k}" for k in range(8)])
    assert capsys.readouterr().err == ""


# ---- unreadable audio ---------------------------------------------------------------------------------
def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the message must say)."""
    folder.mkdir(parents=True, exist_ok=True)
    soundfile.write(folder / "whole.wav", tone(2.0), RATE)
    soundfile.write(folder / "whole.flac", tone(2.0), RATE)
    whole_wav, whole_flac = (folder / "whole.wav").read_bytes(), (folder / "whole.flac").read_bytes()
    files = {
        "empty": ("empty.mp3", b"", "empty file (0 bytes)"),
        "text": ("notes.mp3", b"these are my notes, not a song\n" * 20, "not an audio file (it is text, beginning"),
        "unknown": ("blob.ogg", bytes(range(7, 256)) * 4, "not an audio file (unknown format"),
        "truncated wav": ("cut.wav", whole_wav[:len(whole_wav) // 3], "truncated: its header announces 2.00 s"),
        "header only": ("header.wav", whole_wav[:44], "truncated: its header announces 2.00 s of audio, the file "
                                                       "holds no audio"),
        "truncated flac": ("cut.flac", whole_flac[:len(whole_flac) // 3], "truncated or damaged FLAC data"),
        "damaged mp3": ("junk.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(900), "damaged MP3 file"),
        "m4a": ("song.m4a", b"\x00\x00\x00\x20ftypM4A " + bytes(600), "this format (MP4/M4A) needs ffmpeg"),
    }
    for name, content, _ in files.values():
        (folder / name).write_bytes(content)
    return {key: (folder / name, expected) for key, (name, _, expected) in files.items()}


@pytest.fixture
def no_ffmpeg(monkeypatch):
    monkeypatch.setattr(study.audio, "compressed_decoders", lambda: [])


def test_each_unreadable_file_says_what_is_wrong_and_the_decoder_stays_quiet(tmp_path, no_ffmpeg, capfd):
    for name, (path, expected) in bad_files(tmp_path).items():
        with pytest.raises(AudioError) as error:
            load_audio(path)
        assert str(error.value).startswith(f"{path}: ") and expected in str(error.value), name
        assert "cannot decode audio (libsndfile" not in str(error.value)
    assert capfd.readouterr().err == ""  # mpg123's "Note: Illegal Audio-MPEG-Header ..." does not reach fd 2


@pytest.mark.skipif("MP3" not in soundfile.available_formats(), reason="libsndfile without MP3")
def test_a_truncated_mp3_is_named_truncated(tmp_path):
    soundfile.write(tmp_path / "whole.mp3", tone(3.0), RATE, format="MP3")
    whole = (tmp_path / "whole.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(whole[:len(whole) // 3])
    with pytest.raises(AudioError, match="truncated: its header announces 3.00 s"):
        load_audio(tmp_path / "cut.mp3")


def test_a_format_that_needs_ffmpeg_names_the_decoder_once_there_is_one(tmp_path, monkeypatch):
    path = bad_files(tmp_path)["m4a"][0]
    monkeypatch.setattr(study.audio, "compressed_decoders", lambda: ["FFmpegAudioFile"])

    def ffmpeg_fails(*args, **kwargs):
        raise EOFError("moov atom not found")

    monkeypatch.setattr(study.audio.librosa, "load", ffmpeg_fails)
    with pytest.raises(AudioError, match=r"cannot decode MP4/M4A \(FFmpegAudioFile: moov atom not found\)"):
        load_audio(path)


def test_the_cache_lists_unreadable_files_with_the_reason_and_keeps_the_rest(tmp_path, no_ffmpeg, capfd):
    bad = bad_files(tmp_path / "audio")
    names = ["whole.wav", "whole.flac"] + [path.name for path, _ in bad.values()]
    tracks = pd.DataFrame({"split": "train", "artist": "", "path": names}, index=pd.Index(names, name="track_id"))
    collection = Collection("mine", tracks, ["x"], np.zeros((len(names), 1)), FileLoader(tmp_path / "audio"))
    cache = AudioCache.build(collection, tmp_path / "cache", workers=1, progress=False)
    assert sorted(cache.track_ids) == ["whole.flac", "whole.wav"]
    err = capfd.readouterr().err
    for path, expected in bad.values():
        assert expected in cache.failed[path.name]
        assert f"skipped {path.name}: AudioError: {path}: {expected}" in err
    assert "Note:" not in err  # the decoder's own lines; its words appear once, inside the line above
    listed = pd.read_csv(tmp_path / "cache" / FAILED_FILE, sep="\t")
    assert sorted(listed["track_id"]) == sorted(path.name for path, _ in bad.values())
    again = AudioCache.build(collection, tmp_path / "cache", workers=1, progress=False)
    assert again.track_ids == cache.track_ids and again.failed == cache.failed  # nothing decoded twice


# ---- study tag's inputs ------------------------------------------------------------------------------
def tiny_checkpoint(path: Path, dataset: str = "corpus") -> Path:
    """A checkpoint of test_tag's TinyTagger whose config says it learnt from ``dataset``."""
    meta = _meta()
    meta["config"] = RunConfig.from_dict(meta["config"]).with_overrides(dataset=dataset).to_dict()
    torch.save({**meta, "model_state": TinyTagger().state_dict(), "optimizer_state": {}, "epoch": 1,
                "best_metric": 0.5, "rng_state": {}, "history": []}, path)
    return path


@pytest.fixture
def tiny_models(tmp_path, monkeypatch):
    """Checkpoints of a corpus-trained and an MTT-trained TinyTagger, loaded through study.checkpoint."""
    build = lambda model_cfg, *, n_tags, audio_cfg: TinyTagger(n_tags)  # noqa: E731 - the model factory's stand-in
    original = study.checkpoint.load_tagger
    monkeypatch.setattr(study.checkpoint, "load_tagger", lambda path, device: original(path, device, build=build))
    return {"corpus": tiny_checkpoint(tmp_path / "corpus.pt"), "mtt": tiny_checkpoint(tmp_path / "mtt.pt", "mtt")}


def test_a_folder_is_searched_recursively_and_counted(tmp_path, tiny_models, capsys):
    music = tmp_path / "music"
    (music / "live").mkdir(parents=True)
    soundfile.write(music / "a.wav", tone(2.0), RATE)
    soundfile.write(music / "live" / "b.flac", tone(2.0), RATE)
    (music / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (music / "._a.wav").write_bytes(b"resource fork")  # a macOS copy's shadow file
    status, out, err = run_study(["tag", music, "--checkpoint", tiny_models["mtt"]], capsys)
    assert status == 0 and f"study tag: {music}: 2 audio files" in err
    assert [result["path"] for result in json.loads(out)] == [str(music / "a.wav"), str(music / "live" / "b.flac")]


def test_a_pattern_or_folder_that_gives_nothing_says_so_and_the_rest_is_tagged(tmp_path, tiny_models, capsys):
    soundfile.write(tmp_path / "song.wav", tone(2.0), RATE)
    (tmp_path / "empty").mkdir()
    status, out, err = run_study(["tag", tmp_path / "*.mp3", tmp_path / "empty", tmp_path / "song.wav",
                                  "--checkpoint", tiny_models["mtt"]], capsys)
    assert status == 1
    assert f"study tag: error: {tmp_path / '*.mp3'}: no file matches this pattern" in err
    assert f"study tag: error: {tmp_path / 'empty'}: no audio files in this folder or below" in err
    assert [result["path"] for result in json.loads(out)] == [str(tmp_path / "song.wav")]


def test_silent_and_short_clips_are_tagged_with_a_warning_in_every_output(tmp_path, tiny_models, capsys):
    soundfile.write(tmp_path / "silence.wav", np.zeros(2 * RATE, np.float32), RATE)
    soundfile.write(tmp_path / "short.wav", tone(0.3), RATE)
    soundfile.write(tmp_path / "song.wav", tone(2.0), RATE)
    files = [tmp_path / name for name in ("silence.wav", "short.wav", "song.wav")]
    status, out, err = run_study(["tag", *files, "--checkpoint", tiny_models["mtt"]], capsys)
    assert status == 0
    warnings = {Path(result["path"]).name: result["warnings"] for result in json.loads(out)}
    assert warnings["song.wav"] == [] and len(warnings["silence.wav"]) == 1 and len(warnings["short.wav"]) == 1
    assert "silent (digital silence" in warnings["silence.wav"][0]
    assert "0.30 s is shorter than one 1 s window" in warnings["short.wav"][0]
    assert f"study tag: warning: {files[0]}: silent" in err and f"study tag: warning: {files[1]}: 0.30 s" in err
    status, out, _ = run_study(["tag", *files, "--checkpoint", tiny_models["mtt"], "--format", "csv"], capsys)
    table = pd.read_csv(io.StringIO(out)).fillna("")
    assert table.groupby("path")["warnings"].first().map(bool).tolist() == [True, True, False]


def test_hop_seconds_is_the_step_between_the_windows_used():
    meta = _meta(patch_seconds=1.0)
    assert tag_audio(tone(3.0), TinyTagger(), meta, overlap=0.5)["hop_seconds"] == pytest.approx(0.5)
    assert tag_audio(tone(0.5), TinyTagger(), meta)["hop_seconds"] is None  # one window: no step

    def musicnn_like(model, audio, *, patch_samples, hop_samples, batch_size):  # 187-frame patches: 2.992 s apart
        return np.full((3, len(TAG_TAGS)), 0.5), np.arange(3) * 187 * 256 / RATE

    result = tag_audio(tone(10.0), TinyTagger(), {**meta, "window_scores": musicnn_like}, patch_seconds=3.0)
    assert result["hop_seconds"] == pytest.approx(2.992)


@pytest.mark.skipif(importlib.util.find_spec("musicnn") is None, reason="the musicnn weights are not installed")
def test_a_released_tagger_reports_the_hop_of_its_187_frame_patches():
    from study.pretrained import load_pretrained

    model, meta = load_pretrained("MTT_musicnn")
    result = tag_audio(tone(10.0), model, meta, top_k=1)
    assert result["n_windows"] == 3 and result["hop_seconds"] == pytest.approx(187 * 256 / RATE)  # 2.992 s, not 3


def test_a_corpus_trained_model_says_once_that_it_knows_only_synthetic_music(tmp_path, tiny_models, capsys):
    for index in range(2):
        soundfile.write(tmp_path / f"{index}.wav", tone(2.0), RATE)
    songs = [tmp_path / "0.wav", tmp_path / "1.wav"]
    _, _, err = run_study(["tag", *songs, "--checkpoint", tiny_models["corpus"]], capsys)
    assert err.count("synthetic music") == 1 and "--pretrained MTT_musicnn" in err
    _, _, err = run_study(["tag", *songs, "--checkpoint", tiny_models["mtt"]], capsys)
    assert "synthetic" not in err


# ---- output without a terminal; a finished study rerun --------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_are_drawn_on_a_terminal_only(monkeypatch, capfd):
    assert progress_bar(range(3)).disable  # pytest's stderr is no terminal
    predict_clips(TinyTagger(), lambda track_id: tone(3.0), ["a"], patch_samples=RATE, hop_samples=RATE, progress=True)
    assert "\r" not in capfd.readouterr().err
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    for _ in progress_bar(range(3), desc="steps"):
        pass
    assert "steps" in terminal.getvalue()
    assert progress_bar(range(3), show=False).disable


def test_a_rerun_notebook_is_left_untouched_unless_its_content_changed(tmp_path):
    notebook = write_notebook(tmp_path / "report.ipynb", "size = 1  # count", "print(size * 2)")
    output = tmp_path / "executed" / "report.ipynb"
    assert batch.execute_notebook(notebook, output, {"size": 2}).error is None
    first, stamp = output.read_bytes(), output.stat().st_mtime_ns
    executed = nbformat.read(output, as_version=4)
    assert executed.metadata.papermill.output_path == str(output)  # not the temporary name it was run under
    assert batch.execute_notebook(notebook, output, {"size": 2}).error is None
    assert output.read_bytes() == first and output.stat().st_mtime_ns == stamp
    assert batch.execute_notebook(notebook, output, {"size": 3}).error is None
    assert "6" in "".join(nbformat.read(output, as_version=4).cells[-1].outputs[0].text)
    assert sorted(path.name for path in output.parent.iterdir()) == ["report.ipynb"]  # no temporary copy left


def test_an_executed_notebook_names_no_path_of_this_machine(tmp_path, monkeypatch):
    """A notebook that prints a path inside the checkout (a saved figure, papermill's own records) is kept
    with that path relative to the repository, as it would read in any clone."""
    root = tmp_path / "clone"
    monkeypatch.setattr(batch, "REPOSITORY_ROOT", root)
    figure = root / "figures" / "fig.png"
    notebook = write_notebook(tmp_path / "report.ipynb", "size = 1  # count", f"print({str(figure)!r})")
    output = root / "results" / "notebooks" / "report.ipynb"
    assert batch.execute_notebook(notebook, output, {"size": 2}).error is None
    text = output.read_text()
    assert str(root) not in text
    assert "figures/fig.png" in "".join(nbformat.read(output, as_version=4).cells[-1].outputs[0].text)
    assert nbformat.read(output, as_version=4).metadata.papermill.output_path == "results/notebooks/report.ipynb"
