"""``study batch --executor slurm`` against a real one-node SLURM cluster (tools/slurm-local.sh starts one).

Without a controller that answers, the cluster tests are skipped, unless ``STUDY_TEST_SLURM=required``
(set by CI once the starter script has brought the cluster up), where they fail instead.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from study.cli import main
from study.slurm import SlurmResources, slurm_available
from tests.test_scheduler import start_batch, warning_lines

REPO = Path(__file__).resolve().parents[1]


def need_cluster() -> None:
    problem = slurm_available()
    if problem is None:
        return
    if os.environ.get("STUDY_TEST_SLURM") == "required":
        pytest.fail(f"SLURM is required here: {problem}")
    pytest.skip(f"no SLURM cluster: {problem}")


def grid_file(tmp_path: Path, *, max_epochs: int, entries: list[str], slurm: str = "") -> Path:
    grid = tmp_path / "grid.yaml"
    grid.write_text(textwrap.dedent(f"""\
        notebook: {REPO / 'notebooks' / '01_experiment.ipynb'}
        preset: smoke
        overrides: {{max_epochs: {max_epochs}, patience: {max_epochs}, cache_dir: {tmp_path / 'cache'}}}
        {slurm}
        grid:
        """) + "".join(f"  - {entry}\n" for entry in entries))
    return grid


def slurm_batch(grid: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "study", "batch", str(grid), "--results-dir", str(tmp_path / "results"),
            "--no-report", "--executor", "slurm", "--partition", "local", "--cpus", "1", "--mem-gb", "2",
            "--time-limit", "20", *extra]


def test_resources_come_from_the_grid_then_the_command_line():
    resources = SlurmResources().with_overrides(partition="gpu", time_min=60).with_overrides(time_min=30, cpus=None)
    assert resources.sbatch_options() == ("--partition=gpu --time=30 --cpus-per-task=2 --mem=8G --signal=USR2@90 "
                                          "--requeue")
    with pytest.raises(ValueError, match=r"unknown SLURM resource\(s\) \['queue'\]"):
        SlurmResources().with_overrides(queue="long")


def test_a_dry_run_prints_the_jobs_it_would_submit_and_submits_nothing(tmp_path, capsys):
    grid = grid_file(tmp_path, max_epochs=2, slurm="slurm: {partition: short, gpus: 1}",
                     entries=["{model: [spectrogram], train_size: [20], seed: [0, 1]}"])
    status = main(["batch", str(grid), "--dry-run", "--executor", "slurm", "--time-limit", "45",
                   "--results-dir", str(tmp_path / "results")])
    out = capsys.readouterr().out
    assert status == 0
    jobs = [line.strip() for line in out.splitlines() if line.strip().startswith("sbatch ")]
    assert len(jobs) == 2 and all(job.startswith("sbatch --partition=short --time=45 --cpus-per-task=2 --mem=8G "
                                                 "--gpus-per-node=1 --signal=USR2@90 --requeue --job-name=smoke-"
                                                 "corpus-spectrogram-n20-s") for job in jobs)
    assert "--executor slurm would submit 2 job(s) through submitit" in out
    assert not (tmp_path / "results" / "runs").exists() and not (tmp_path / "cache" / "slurm").exists()


def test_a_smoke_grid_runs_as_slurm_jobs_a_failed_point_names_its_log_and_a_rerun_skips_what_is_stored(tmp_path):
    need_cluster()
    grid = grid_file(tmp_path, max_epochs=3, entries=["{model: [spectrogram], train_size: [20], seed: [0]}",
                                                      "{model: [gbt], train_size: [20, 5000], seed: [0]}"])
    done = subprocess.run(slurm_batch(grid, tmp_path, "--retries", "0"), capture_output=True, text=True, cwd=REPO,
                          timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # the 5,000-clip GBT cannot run on a 120-clip corpus
    assert len(re.findall(r"^start \S+ \(SLURM job \d+, about ", done.stdout, re.M)) == 3, output
    assert "done 2, skipped 0 (already complete), failed 1" in done.stdout
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED smoke-corpus-gbt-n5000")]
    assert failed and "(log " in failed[0] and str(tmp_path / "cache" / "logs") in failed[0]
    assert warning_lines(output) == []
    runs = sorted(path.parent.name for path in (tmp_path / "results" / "runs").glob("*/COMPLETE"))
    assert [run.split("-s0-")[0] for run in runs] == ["smoke-corpus-gbt-n20", "smoke-corpus-spectrogram-n20"]
    executed = sorted(path.name for path in (tmp_path / "results" / "notebooks").glob("*.ipynb"))
    assert [name.removesuffix(".ipynb") for name in executed if "n20" in name] == runs

    grid = grid_file(tmp_path, max_epochs=3, entries=["{model: [spectrogram], train_size: [20], seed: [0]}",
                                                      "{model: [gbt], train_size: [20], seed: [0]}"])
    again = subprocess.run(slurm_batch(grid, tmp_path), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert again.returncode == 0 and "done 0, skipped 2 (already complete)" in again.stdout, again.stdout
    assert "SLURM job" not in again.stdout


def test_a_requeued_job_resumes_from_its_checkpoint(tmp_path):
    """A preemption (``scontrol requeue``): SLURM stops the job, runs it again, and the run goes on."""
    need_cluster()
    grid = grid_file(tmp_path, max_epochs=25, entries=["{model: [spectrogram], train_size: [20], seed: [0]}"])
    batch, lines = start_batch(slurm_batch(grid, tmp_path), epochs=3)
    job = re.search(r"\(SLURM job (\d+),", "".join(lines)).group(1)
    requeue = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    assert requeue.returncode == 0, requeue.stderr
    requeued_at = time.monotonic()
    rest, _ = batch.communicate(timeout=900)
    output = "".join(lines) + rest
    assert batch.returncode == 0, output
    assert re.search(r": resumed after epoch [1-9]\d*", rest), output
    assert "done 1, skipped 0 (already complete), failed 0" in output
    log = next((tmp_path / "cache" / "logs").glob("smoke-corpus-spectrogram-n20-s0-*.log")).read_text()
    assert f"# SLURM job {job} on " in log and ", restart 1" in log
    assert re.search(r"resuming \S+ after epoch [1-9]", log)
    assert len(list((tmp_path / "results" / "runs").glob("*/COMPLETE"))) == 1
    assert time.monotonic() - requeued_at < 900
