"""Every command the README shows runs as written in a fresh clone.

The commands are read out of the README's ``bash`` blocks and its inline code; the cheap ones run
here through ``study``'s own entry point, in a folder holding the ``song.mp3`` and ``my-music/``
the examples name.  The others are listed in NOT_RUN with the reason, so that a new command in
the README fails this test until it is run or given one.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from study.cli import main
from study.config import RunConfig
from study.experiment import checkpoint_dir, shared_checkpoint

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def _readme_tables():
    """tools/readme_tables.py, which fills the README's generated blocks (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("readme_tables", REPO / "tools" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TABLES = _readme_tables()
# how a command starts, in a code block or inline; `.venv/bin/study` and `python -m study` are `study`
COMMAND = re.compile(r"^(study|\.venv/bin/study|python -m study|python|make|torchrun|conda|pip|[A-Z_]+=\S+)( |$)")
STUDY = re.compile(r"^(\.venv/bin/study|python -m study)(?= |$)")

NOT_RUN = {
    "make study": "the whole default study: hours to train the runs that are not committed",
    "make study TORCH_SPEC=torch": "installs torch's CUDA build from the network",
    "make test": "this test suite",
    "make smoke": "trains the smoke study (two minutes); tests/test_batch.py runs it end to end",
    "conda env create -f environment.yml": "installs packages from the network",
    "pip install -e . --no-deps": "installs this package",
    "study": "the executable's name in prose, not a command",
    "make": "the tool's name in prose, not a command",
    "study train": "the command's name in prose; its examples are listed here",
    "study tag": "the command's name in prose; its examples are listed here",
    "study batch grids/default.yaml --time-budget 120": "trains the default study's remaining points for up to "
                                                        "two hours; tests/test_scheduler.py runs a time budget",
    "study batch GRID --time-budget MINUTES": "the option's form in prose; its example is listed here",
    "study batch grids/default.yaml --dry-run": "measures each model's training speed here (a minute or two); "
                                                "tests/test_estimate.py checks the estimate",
    "python tools/share_checkpoints.py grids/default.yaml": "copies checkpoints that only a trained cache holds",
    "study train --preset default --model waveform --train_size 300 --seed 1":
        "trains a model for minutes unless results/runs already holds this run",
    "study evaluate --preset default --model waveform --train_size 300 --seed 1 --whole_clip true":
        "scores the checkpoint that the `study train` line writes (cache/ is not part of a clone)",
    "study gbt --preset default": "fits the GBT baseline for minutes unless results/runs already holds its run",
    "study batch grids/default.yaml --jobs 2": "the default grid, then its report notebooks (minutes)",
    "study run --preset smoke": "trains the smoke study (two minutes); tests/test_batch.py runs it end to end",
    "study report": "executes the report notebooks (a minute); tests/test_batch.py runs them",
    "MTT_ROOT=/data/mtt study batch grids/mtt.yaml": "needs a copy of MagnaTagATune",
    "study tag song.mp3 --checkpoint cache/default/checkpoints/<run-id>/best.pt --top-k 5":
        "needs a checkpoint written by `study train`; test_the_checkpoint_path_is_where_study_train_writes checks it",
    "torchrun --nproc_per_node 4 -m study train --preset paper": "the paper's configuration on four GPUs",
    "python benchmarks/bench_{corpus,cache,train,pretrained,epoch}.py": "benchmarks (minutes each)",
    "python benchmarks/bench_epoch.py": "an epoch's breakdown: the default preset trained for three epochs per model",
    "python benchmarks/parity.py --baseline COMMIT": "trains a short run under another commit and this tree (minutes)",
    "python tools/experiment_parameters.py": "rewrites a notebook's parameters cell; tests/test_notebooks.py checks it",
    "study cache --preset paper": "decodes the paper preset's 100,000-clip corpus (hours)",
    "study cache": "the command's name in prose; `study cache --preset paper` is its example",
    "study batch grids/paper.yaml --jobs N": "the paper's configuration on N GPUs",
    "study evaluate --checkpoint cache/default/checkpoints/<run-id>/best.pt --device cpu":
        "needs a checkpoint written by `study train`",
    "torchrun": "the launcher's name in prose",
    "python benchmarks/gpu_check.py": "needs a GPU machine",
    "python benchmarks/bench_speed.py": "the speed benchmark (about an hour)",
    "study batch GRID --dry-run": "GRID stands for a grid file; the default grid's dry run is listed above",
    "study batch": "the command's name in prose",
    "study batch grids/scale.yaml --executor slurm --dry-run": "measures each model's training speed here (a minute "
                                                                "or two); tests/test_slurm.py runs a SLURM dry run",
    "study batch grids/scale.yaml --executor slurm --partition gpu --gpus 1 --cpus 8 --mem-gb 32 --time-limit 240":
        "needs a SLURM cluster with a gpu partition; tests/test_slurm.py submits smoke grids to a local one",
    "python -m study.worker": "what each point's process runs, named in prose",
    "python tools/readme_tables.py": "rewrites the README; test_every_generated_block_of_the_readme_equals_its_file "
                                     "checks its blocks",
}


def readme_commands() -> list[str]:
    """Commands in ``bash`` blocks (one a line, comments dropped) and in inline code, in order, once each."""
    # generated blocks (tools/readme_tables.py) quote the commands that measured them: records, not instructions
    text = TABLES.BLOCK.sub("", README.read_text())
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        commands += [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    commands += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    commands = [STUDY.sub("study", command) for command in commands if COMMAND.match(command)]
    return list(dict.fromkeys(commands))


COMMANDS = readme_commands()
RUN = [command for command in COMMANDS if command not in NOT_RUN]


def test_every_readme_command_is_run_here_or_listed_with_a_reason():
    assert len(COMMANDS) > 10, "the README's commands were not found"
    assert [command for command in RUN if not command.startswith("study ")] == []
    assert sorted(set(NOT_RUN) - set(COMMANDS)) == [], "NOT_RUN lists commands the README no longer shows"


def test_the_tagging_section_leads_with_a_pretrained_tagger():
    tagging = [command for command in COMMANDS if command.startswith("study tag ")]
    assert tagging and "--pretrained" in tagging[0]


def test_the_checkpoint_path_is_where_study_train_writes():
    """The README's `--checkpoint cache/<preset>/checkpoints/<run-id>/best.pt` is study train's layout, and a
    committed checkpoint it names is where share_checkpoint puts it, and is there."""
    cfg = RunConfig.from_flat("default")
    written = str(checkpoint_dir(cfg).relative_to(REPO) / "best.pt").replace(cfg.run_id, "<run-id>")
    paths = [shlex.split(command)[shlex.split(command).index("--checkpoint") + 1]
             for command in COMMANDS if "--checkpoint" in command]
    assert written in paths
    for path in paths:
        if path != written:
            run_id = Path(path).parent.name
            assert path == str(shared_checkpoint("results", run_id).relative_to(REPO))
            assert (REPO / path).is_file(), f"{path}: the README names a checkpoint that is not committed"


@pytest.fixture
def fresh_folder(tmp_path, monkeypatch):
    """A working folder with the audio the examples name: song.mp3 and my-music/ (a file in a sub-folder)."""
    seconds = np.arange(7 * 16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 330 * seconds) * (1 + np.sin(2 * np.pi * 2 * seconds))).astype(np.float32)
    soundfile.write(tmp_path / "song.mp3", tone, 16000, format="MP3")
    (tmp_path / "my-music" / "live").mkdir(parents=True)
    soundfile.write(tmp_path / "my-music" / "a.wav", tone, 16000)
    soundfile.write(tmp_path / "my-music" / "live" / "b.flac", tone[::-1].copy(), 16000)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("command", RUN)
def test_readme_command_runs_as_written(command, fresh_folder, capsys):
    if "--pretrained" in command and importlib.util.find_spec("musicnn") is None:
        pytest.skip("the musicnn weights are not installed (pip install --no-deps musicnn)")
    arguments = shlex.split(command)[1:]
    if "--checkpoint" in arguments:  # a committed checkpoint, named relative to the repository
        where = arguments.index("--checkpoint") + 1
        arguments[where] = str(REPO / arguments[where])
    try:
        status = main(arguments)
    except SystemExit as exit_:  # --help
        status = exit_.code
    out, err = capsys.readouterr()
    assert status == 0, f"{command}\n{err}"
    if "--format json" in command:
        assert all(result["tags"] for result in json.loads(out))
    if "--output tags.csv" in command:
        table = pd.read_csv(fresh_folder / "tags.csv")
        assert sorted(set(table["path"])) == ["my-music/a.wav", "my-music/live/b.flac"]
        assert "my-music/: 2 audio files" in err


def test_the_study_command_starts_in_a_fresh_process():
    done = subprocess.run([sys.executable, "-m", "study", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "tag" in done.stdout


def test_every_generated_block_of_the_readme_equals_its_file():
    """Tables the README shows from results/ (tools/readme_tables.py) are the files' current content."""
    found = TABLES.blocks(README.read_text())
    assert found, "the README shows no generated table"
    for path, body in found:
        assert body == (REPO / path).read_text(), f"{path} changed: run python tools/readme_tables.py"
