"""Do two copies of the code train the same run?  A short default-preset run under each, compared.

A speed-up of the training loop must leave a run's results as they were: the same run id, the same
learning curve and the same test predictions, up to float rounding (sums taken in another order).
This script trains one short run per model under an older commit (checked out beside this tree with
``git worktree``) and under this tree, each in a fresh process, on the same corpus cache, and prints
the largest differences.  It exits 1 when a run id differs or a difference exceeds the tolerance.

    .venv/bin/python benchmarks/parity.py --baseline 5971726 --models spectrogram,waveform

The run is the default preset's (the x1/4 front-ends, 3 s patches, float16 cache) cut short: 100
training clips, 3 epochs of 512 patches, validation and testing on the corpus's whole splits.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CURVE_COLUMNS = ("train_loss", "valid_loss", "valid_roc_auc", "valid_pr_auc", "valid_rmse")


def worker(model: str, epochs: int, cache_dir: str, results: str) -> None:
    """Train the short run with whichever ``study`` is first on the path; print its folder as JSON."""
    import torch

    from study.config import RunConfig
    from study.experiment import run_experiment

    torch.set_num_threads(1)
    # the loss the study's grids train with, which older commits' preset had too
    cfg = RunConfig.from_flat("default", model=model, train_size=100, max_epochs=epochs, patience=epochs,
                              epoch_patches=512, loss="bce", cache_dir=cache_dir)
    run_dir = run_experiment(cfg, results_dir=results, force=True)
    print(json.dumps({"run_dir": str(run_dir)}))


def train_under(tree: Path, model: str, epochs: int, cache_dir: str, results: Path) -> Path:
    # one thread on both sides: a sum split over other threads is taken in another order, and commits
    # before the compiled loops kept torch on its own threads let numba's OpenMP launch raise torch to
    # every core, unless numba's own maximum is one
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--worker", model, "--epochs", str(epochs), "--cache-dir", cache_dir,
                           "--results", str(results)], env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{tree}: the {model} run failed:\n{done.stderr[-3000:]}")
    return Path(json.loads(done.stdout.strip().splitlines()[-1])["run_dir"])


def compare(old: Path, new: Path) -> dict:
    """Largest absolute differences of the curve's columns and of the test scores; whether the ids match."""
    a, b = pd.read_csv(old / "curve.csv"), pd.read_csv(new / "curve.csv")
    row = {"same_run_id": old.name == new.name, "run_id": new.name, "epochs": (len(a), len(b))}
    for column in CURVE_COLUMNS:
        row[column] = float(np.max(np.abs(a[column].to_numpy() - b[column].to_numpy()))) if len(a) == len(b) else np.inf
    pa, pb = np.load(old / "predictions.npz"), np.load(new / "predictions.npz")
    row["same_clips"] = bool(np.array_equal(pa["track_ids"], pb["track_ids"]))
    row["y_score"] = float(np.max(np.abs(pa["y_score"] - pb["y_score"]))) if row["same_clips"] else np.inf
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="5971726", help="the older commit (default: %(default)s)")
    parser.add_argument("--baseline-tree", default="", help="an existing checkout of it (else a worktree is made)")
    parser.add_argument("--models", default="spectrogram,waveform")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cache-dir", default=str(ROOT / "cache" / "default"), help="the corpus cache both sides read")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest difference accepted (curve and scores)")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    parser.add_argument("--results", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.epochs, args.cache_dir, args.results)
        return 0
    failed = False
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        old_tree = Path(args.baseline_tree) if args.baseline_tree else work / "baseline"
        if not args.baseline_tree:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree), args.baseline],
                           check=True, capture_output=True)
        try:
            for model in args.models.split(","):
                old = train_under(old_tree, model, args.epochs, args.cache_dir, work / "old")
                new = train_under(ROOT, model, args.epochs, args.cache_dir, work / "new")
                row = compare(old, new)
                worst = max(row[c] for c in (*CURVE_COLUMNS, "y_score"))
                ok = row["same_run_id"] and row["same_clips"] and worst <= args.tolerance
                failed |= not ok
                print(f"{model}: run id {'the same' if row['same_run_id'] else 'DIFFERS'} ({row['run_id']}), "
                      f"{row['epochs'][1]} epochs; largest differences: "
                      + ", ".join(f"{c} {row[c]:.2e}" for c in (*CURVE_COLUMNS, "y_score"))
                      + f" -> {'equal to float tolerance' if ok else 'NOT EQUAL'} (tolerance {args.tolerance:g})",
                      flush=True)
        finally:
            if not args.baseline_tree:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)], capture_output=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
