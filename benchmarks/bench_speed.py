"""Speed ratios measured side by side in one run: this tree against an older commit, and against peers' code.

The machine is shared and its speed drifts, so no figure here is an absolute time compared with
one taken earlier: every comparison runs its two sides alternately (A B A B ...), each in a fresh
process, and reports each pair's ratio and their median.  The older commit is checked out into a
temporary git worktree and measured with the same probe script (benchmarks/probes.py) and the
same interpreter; peers' code runs from benchmarks/peer_*.py.

Suites (``--suites``, default train, paper and samplecnn; ``tag`` needs a TensorFlow interpreter):

    epoch      the study's own epoch as ``study batch`` trains it (benchmarks/bench_epoch.py): each
               front-end alone, 1 thread, seconds per epoch; two jobs of one thread at once as epochs
               per hour, new / old; and this tree's two jobs of one thread against one job of two
               threads

    train      the default preset's training, end to end (cached patches, steps, a validation pass
               every epoch, checkpoints), both front-ends, 1 thread: new / old clips per second; then
               the training step's GFLOP/s as a fraction of the machine's matrix product, and its
               most expensive operators
    paper      the paper's configuration (x1 front-end, 512 filters / 500 units) training step at
               3 s (batch 32) and 15 s (batch 8), both front-ends, 1 thread
    samplecnn  SampleCNN trained by this study's path against the sota-music-tagging-models
               repository's path (benchmarks/peer_samplecnn.py), batch 16, 2 threads
    tag        MTT_musicnn tagging a 30 s song: this tree against musicnn's own TensorFlow code
               (benchmarks/peer_musicnn.py, run by --tf-python) and against the older commit, 2 threads;
               warm (model loaded) and as whole commands (a fresh process, imports included)

    python benchmarks/bench_speed.py --suites train,paper,samplecnn --repeats 3
    python benchmarks/bench_speed.py --suites tag --tf-python /tmp/tfenv/bin/python

With ``--json``, the rows are written after every suite, so a run stopped part-way keeps the suites
it finished; ``--from-log LOG --json FILE`` writes the comparisons a stopped run printed (each
pair's figures, as its log shows them) without measuring anything again.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
PROBES = ROOT / "benchmarks" / "probes.py"
BASELINE_REVISION = "0f60ca6"  # the study before its fused CPU path, per-kind loss and epoch sizes


@dataclass
class Side:
    """One side of a comparison: a command, and the source tree whose ``study`` it imports."""

    label: str
    command: list[str]
    tree: Path = ROOT
    threads: int = 1
    key: str = "clips_per_s"  # the JSON field compared; or 'wall' for the whole command's wall time
    env: dict = field(default_factory=dict)

    def run(self) -> float:
        env = {**os.environ, "PYTHONPATH": str(self.tree), "OMP_NUM_THREADS": str(self.threads),
               "MKL_NUM_THREADS": str(self.threads), **self.env}
        started = time.perf_counter()
        done = subprocess.run(self.command, cwd=self.tree, env=env, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{self.label} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        if self.key == "wall":
            return wall
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        return float(json.loads(lines[-1])[self.key])


def compare(name: str, new: Side, old: Side, repeats: int, *, higher_is_better: bool = True, unit: str = "") -> dict:
    """Alternate the two sides ``repeats`` times; the ratio is new's speed over old's (> 1: new is faster)."""
    pairs = []
    for _ in range(repeats):
        a, b = new.run(), old.run()
        pairs.append((a, b))
        print(f"  {name}: {new.label} {a:.4g}  {old.label} {b:.4g}", flush=True)
    ratios = [a / b if higher_is_better else b / a for a, b in pairs]
    return {"comparison": name, "new": new.label, "old": old.label,
            "unit": unit or ("clips/s" if higher_is_better else "s"),
            "new_median": statistics.median(a for a, _ in pairs), "old_median": statistics.median(b for _, b in pairs),
            "ratio_median": statistics.median(ratios), "ratios": [round(r, 3) for r in ratios]}


def baseline_tree(revision: str, folder: Path) -> Path:
    """``revision`` checked out (detached) in a temporary git worktree."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(folder), revision],
                   check=True, capture_output=True, text=True)
    return folder


def probe(*args: str) -> list[str]:
    return [sys.executable, str(PROBES), *args]


def train_suite(old: Path, work: Path, repeats: int) -> list[dict]:
    rows = []
    for model in ("spectrogram", "waveform"):
        arguments = ["train", "--model", model, "--train-size", "1000", "--epochs", "3"]
        rows.append(compare(f"train {model} (default preset, end to end)",
                            Side("new", probe(*arguments, "--work", str(work / f"new-{model}"))),
                            Side("old", probe(*arguments, "--work", str(work / f"old-{model}")), tree=old), repeats))
    return rows


EPOCH = ROOT / "benchmarks" / "bench_epoch.py"


def epoch_suite(old: Path, repeats: int, epochs: int = 2) -> list[dict]:
    """The study's own epoch as ``study batch`` trains it (benchmarks/bench_epoch.py: the default preset,
    1,000 clips, epochs of 4,096 patches and a validation pass, the first epoch left out): one run alone
    per front-end at one thread, then two jobs of one thread at once (its default on two cores) as epochs
    per hour, each commit as it runs them, and this tree's two jobs against one job of two threads."""
    def epoch(*options: str, tree: Path = ROOT, key: str = "epoch_s", threads: int = 1) -> Side:
        return Side("new" if tree == ROOT else "old", [sys.executable, str(EPOCH), "--epochs", str(epochs),
                    "--threads", str(threads), "--cache-dir", str(ROOT / "cache" / "default"), *options],
                    tree=tree, key=key, threads=threads)

    rows = []
    for model in ("spectrogram", "waveform"):  # older commits let numba's OpenMP launch raise torch to every core:
        held = epoch("--models", model, tree=old)  # alone, held to one
        held.env = {"NUMBA_NUM_THREADS": "1"}
        rows.append(compare(f"epoch {model} (default preset, 1 job, 1 thread)", epoch("--models", model), held,
                            repeats, higher_is_better=False, unit="s per epoch"))
    both = ("--models", "spectrogram,waveform")
    rows.append(compare("study batch, 2 jobs x 1 thread as each commit runs them (a spectrogram and a waveform run at once)",
                        epoch(*both, "--jobs", "2", key="epochs_per_hour"),
                        epoch(*both, "--jobs", "2", key="epochs_per_hour", tree=old), repeats, unit="epochs/h"))
    two_jobs, one_job = epoch(*both, "--jobs", "2", key="epochs_per_hour"), epoch(*both, key="epochs_per_hour", threads=2)
    two_jobs.label, one_job.label = "jobs2-thread1", "jobs1-threads2"
    rows.append(compare("this tree: 2 jobs x 1 thread against 1 job x 2 threads (both front-ends)", two_jobs, one_job,
                        repeats, unit="epochs/h"))
    return rows


def profile_rows(old: Path, repeats: int) -> list[dict]:
    """The default preset's training step, new and old alternately: GFLOP/s against the machine's matrix
    product (benchmarks/probes.py profile), and the operators that take the time."""
    rows = []
    for model in ("spectrogram", "waveform"):
        runs: dict[str, list[dict]] = {"new": [], "old": []}
        tops: dict[str, str] = {}
        for _ in range(repeats):
            for label, tree in (("new", ROOT), ("old", old)):
                env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
                done = subprocess.run(probe("profile", "--model", model, "--steps", "5"), cwd=tree, env=env,
                                      capture_output=True, text=True, timeout=1800, check=True)
                runs[label].append(json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]))
                tops[label] = [ln for ln in done.stderr.splitlines() if ln.startswith("top operators")][-1]
        summary = {label: {key: statistics.median(r[key] for r in found) for key in ("gflop", "gflops", "peak_gflops",
                                                                                     "fraction", "clips_per_s")}
                   for label, found in runs.items()}
        for label in ("new", "old"):
            figures = summary[label]
            print(f"  profile {model} {label}: {figures['gflop']:.2f} GFLOP per step at {figures['gflops']:.1f} GFLOP/s, "
                  f"{100 * figures['fraction']:.1f} % of the {figures['peak_gflops']:.0f} GFLOP/s matrix product; "
                  f"{tops[label]}", flush=True)
        rows.append({"comparison": f"step {model} (default preset, batch 32, 1 thread): % of matmul peak",
                     "new": "new", "old": "old", "unit": "% of peak",
                     "new_median": 100 * summary["new"]["fraction"], "old_median": 100 * summary["old"]["fraction"],
                     "ratio_median": summary["new"]["fraction"] / summary["old"]["fraction"],
                     "ratios": [round(a["fraction"] / b["fraction"], 3) for a, b in zip(runs["new"], runs["old"])],
                     "top_new": tops["new"], "top_old": tops["old"]})
    return rows


def paper_suite(old: Path, repeats: int) -> list[dict]:
    rows = []
    for model in ("spectrogram", "waveform"):
        for seconds, batch, steps in ((3, 32, 2), (15, 8, 2)):
            arguments = ["step", "--paper", "--model", model, "--seconds", str(seconds), "--batch", str(batch),
                         "--steps", str(steps)]
            rows.append(compare(f"step {model} (paper x1 512/500, {seconds} s, batch {batch})",
                                Side("new", probe(*arguments)), Side("old", probe(*arguments), tree=old), repeats))
    return rows


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n > 1 else ''}"


def samplecnn_suite(old: Path, work: Path, repeats: int, threads: int = 2) -> list[dict]:
    n = str(threads)
    ours = Side("study", probe("samplecnn", "--work", str(work / "samplecnn"), "--patches", "320", "--batch", "16",
                               "--threads", n), threads=threads)
    peer = Side("peer", [sys.executable, str(ROOT / "benchmarks" / "peer_samplecnn.py"), "--work",
                         str(work / "peer"), "--patches", "320", "--batch", "16", "--threads", n], threads=threads)
    older = Side("old", probe("step", "--model", "samplecnn", "--batch", "16", "--steps", "10", "--threads", n),
                 tree=old, threads=threads)
    newer = Side("new", probe("step", "--model", "samplecnn", "--batch", "16", "--steps", "10", "--threads", n),
                 threads=threads)
    return [compare(f"SampleCNN end to end, study vs sota-music-tagging-models (batch 16, {_threads(threads)})", ours, peer, repeats),
            compare(f"SampleCNN training step, new vs old (batch 16, {_threads(threads)})",
                    newer, older, repeats)]


def tag_suite(old: Path, work: Path, repeats: int, tf_python: str, threads: int = 2) -> list[dict]:
    n = str(threads)
    song = work / "song30.wav"  # 30 s of orchestral-like harmonic tones with noise, 16 kHz
    t = np.arange(30 * 16000) / 16000
    rng = np.random.default_rng(30)
    signal = sum(np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * t / (3 + k)))
                 for k, f in enumerate((110.0, 220.0, 277.2, 329.6, 440.0)))
    soundfile.write(song, (0.1 * signal + 0.02 * rng.standard_normal(t.size)).astype(np.float32), 16000,
                    subtype="PCM_16")
    rows = []
    warm = ["tag", "--audio", str(song), "--repeats", "5", "--threads", n]
    rows.append(compare(f"tag 30 s, warm: new vs old ({_threads(threads)})", Side("new", probe(*warm), threads=threads, key="seconds"),
                        Side("old", probe(*warm), tree=old, threads=threads, key="seconds"), repeats, higher_is_better=False))
    if tf_python:
        peer = [tf_python, str(ROOT / "benchmarks" / "peer_musicnn.py"), str(song), "--repeats", "5", "--threads", n]
        for key in ("batched", "inference", "extractor"):
            rows.append(compare(f"tag 30 s, warm: study vs musicnn TF ({key}, {_threads(threads)})",
                                Side("study", probe(*warm), threads=threads, key="seconds"),
                                Side("musicnn-tf", peer, threads=threads, key=key), repeats, higher_is_better=False))
        cold_ours = [sys.executable, "-m", "study", "tag", str(song), "--pretrained", "MTT_musicnn", "--output",
                     str(work / "tags.json")]
        cold_peer = [tf_python, "-c", "import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='3'; "
                     "os.environ['TF_USE_LEGACY_KERAS']='1'; from musicnn.extractor import extractor; "
                     f"extractor({str(song)!r}, model='MTT_musicnn', extract_features=False)"]
        rows.append(compare(f"tag 30 s, whole command: study tag vs musicnn extractor ({_threads(threads)})",
                            Side("study", cold_ours, threads=threads, key="wall"),
                            Side("musicnn-tf", cold_peer, threads=threads, key="wall"), repeats, higher_is_better=False))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", default="train,paper,samplecnn", help="comma-separated: epoch, train, paper, samplecnn, tag")
    parser.add_argument("--baseline", default=BASELINE_REVISION, help="the older commit (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating pairs per comparison")
    parser.add_argument("--threads", type=int, default=2, help="threads of each side in the samplecnn and tag suites")
    parser.add_argument("--tf-python", default="", help="an interpreter with TensorFlow and musicnn (tag suite)")
    parser.add_argument("--json", default="", help="also write the rows to this file (and a .md beside it)")
    parser.add_argument("--from-log", default="", help="a stopped run's printed output: write its finished rows")
    args = parser.parse_args(argv)
    suites = args.suites.split(",")
    if args.from_log:
        command, rows = rows_from_log(Path(args.from_log).read_text())
        write_rows(args.json or Path(args.from_log).with_suffix(".json"), rows, args.baseline,
                   f"{command} (stopped part-way; the comparisons it finished)")
        return 0
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"baseline {args.baseline}; command: python benchmarks/bench_speed.py {' '.join(argv or sys.argv[1:])}",
          flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    old = baseline_tree(args.baseline, work / "baseline")
    rows: list[dict] = []
    command = "python benchmarks/bench_speed.py " + " ".join(argv or sys.argv[1:])

    def keep(found: list[dict]) -> None:
        rows.extend(found)
        if args.json:
            write_rows(args.json, rows, args.baseline, command)

    try:
        if "epoch" in suites:
            keep(epoch_suite(old, args.repeats))
        if "train" in suites:
            keep(train_suite(old, work, args.repeats))
            keep(profile_rows(old, args.repeats))
        if "paper" in suites:
            keep(paper_suite(old, args.repeats))
        if "samplecnn" in suites:
            keep(samplecnn_suite(old, work, args.repeats, args.threads))
        if "tag" in suites:
            keep(tag_suite(old, work, args.repeats, args.tf_python, args.threads))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'comparison':<78} {'new':>10} {'old':>10} {'ratio':>7}  pairs")
    for row in rows:
        print(f"{row['comparison']:<78} {row['new_median']:>10.4g} {row['old_median']:>10.4g} "
              f"{row['ratio_median']:>6.2f}x  {row['ratios']}  ({row['new']} vs {row['old']}, {row['unit']})")
    return 0


def write_rows(path: str | Path, rows: list[dict], baseline: str, command: str) -> None:
    """The rows as JSON at ``path`` and as a markdown table beside it, under the machine and the command."""
    machine = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
               "python": platform.python_version(), "torch": _torch_version(), "baseline": baseline,
               "date": time.strftime("%Y-%m-%d"), "command": command}
    Path(path).write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    Path(path).with_suffix(".md").write_text(markdown(machine, rows))


PAIR_LINE = re.compile(r"^  (?P<name>.+): (?P<first>\S+) (?P<a>[-+.\deE]+)  (?P<second>\S+) (?P<b>[-+.\deE]+)$")
PROFILE_LINE = re.compile(r"^  profile (?P<model>\S+) (?P<label>new|old): [\d.]+ GFLOP per step at [\d.]+ GFLOP/s, "
                          r"(?P<percent>[\d.]+) % of the [\d.]+ GFLOP/s matrix product; (?P<top>.*)$")


def rows_from_log(text: str) -> tuple[str, list[dict]]:
    """(command, rows) of a run's printed output: every pair :func:`compare` printed, grouped into its
    comparison's row, and the profile's summary lines (their medians; the per-pair ratios are not printed)."""
    lines = text.splitlines()
    command = lines[0].split("command: ", 1)[-1] if lines else ""
    pairs: dict[str, list] = {}
    profiles: dict[str, dict] = {}
    for line in lines[1:]:
        if (found := PROFILE_LINE.match(line)):
            profiles.setdefault(found["model"], {})[found["label"]] = (float(found["percent"]), found["top"])
        elif (found := PAIR_LINE.match(line)):
            pairs.setdefault(found["name"], []).append((found["first"], float(found["a"]), found["second"],
                                                        float(found["b"])))
    rows = []
    for name, found in pairs.items():
        faster = not name.startswith(("tag", "epoch "))  # tagging and epochs compare seconds, the rest speeds
        unit = ("s per epoch" if name.startswith("epoch ") else "s" if not faster
                else "epochs/h" if name.startswith(("study batch", "this tree")) else "clips/s")
        ratios = [a / b if faster else b / a for _, a, _, b in found]
        rows.append({"comparison": name, "new": found[0][0], "old": found[0][2], "unit": unit,
                     "new_median": statistics.median(a for _, a, _, _ in found),
                     "old_median": statistics.median(b for _, _, _, b in found),
                     "ratio_median": statistics.median(ratios), "ratios": [round(r, 3) for r in ratios]})
    for model, sides in profiles.items():
        if {"new", "old"} <= set(sides):
            (new, top_new), (old, top_old) = sides["new"], sides["old"]
            rows.append({"comparison": f"step {model} (default preset, batch 32, 1 thread): % of matmul peak",
                         "new": "new", "old": "old", "unit": "% of peak", "new_median": new, "old_median": old,
                         "ratio_median": new / old, "ratios": [], "top_new": top_new, "top_old": top_old})
    return command, rows


def _torch_version() -> str:
    import torch

    return torch.__version__


def markdown(machine: dict, rows: list[dict]) -> str:
    """The rows as a markdown table under a line saying where, when and how they were measured."""
    lines = [f"Measured {machine['date']} on {machine['machine']} (Python {machine['python']}, torch {machine['torch']}) "
             f"with `{machine['command']}`; old = commit {machine['baseline']}. Ratio > 1: the first side is faster "
             f"(median of alternating pairs; every pair's ratio in brackets).", "",
             "| comparison | first | second | unit | first (median) | second (median) | ratio | pairs |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row['comparison']} | {row['new']} | {row['old']} | {row['unit']} | {row['new_median']:.4g} | "
                     f"{row['old_median']:.4g} | {row['ratio_median']:.2f}x | {row['ratios']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
