"""What only a GPU can show: the checks a CUDA machine runs that the CPU test suite cannot.

Run it on a machine with torch's CUDA build (``make install TORCH_SPEC=torch``)::

    .venv/bin/python benchmarks/gpu_check.py            # every check
    .venv/bin/python benchmarks/gpu_check.py --quick    # without the papermill smoke study
    .venv/bin/python benchmarks/gpu_check.py --only paths,resume --work /tmp/gpu-check

Each check prints its figures, then ``ok``, ``FAILED: <why>`` or ``skipped: <why>``; a table of
all of them ends the output, and the exit status is 1 when one failed.

  device  torch and CUDA versions, the GPUs, the device ``auto`` picks for local ranks 0 and 1, the
          loader workers chosen, and the GPU each job of ``study batch --jobs N`` gets
  paths   the paper's two models at smoke size (without dropout), same weights and batch: the fused
          CPU path against the GPU's plain operations in float32 (TF32 off), training-mode logits and
          gradients; and float16 autocast against float32 on the GPU
  cudnn   whole clips of many lengths with cuDNN benchmarking on and off, and through predict_clips
          (which turns it off for whole clips)
  resume  one epoch on the CPU (disabled gradient scaler) resumed on the GPU with mixed precision
          (enabled scaler), and a GPU epoch resumed on the CPU
  smoke   ``study cache`` then ``study train --preset smoke`` of both models on one GPU: seconds,
          epochs, test ROC-AUC and PR-AUC (``--cpu-baseline``: the same runs on the CPU beside them)
  study   ``study run --preset smoke``: the grid through papermill and its reports, wall seconds
  ddp     (2 GPUs or more) ``torchrun --nproc_per_node 2`` of the smoke spectrogram run: world size in
          its provenance, metrics beside the one-GPU run; again with ``--sync_batchnorm true``; again
          with one visible GPU per process (a scheduler's per-task CUDA_VISIBLE_DEVICES)
  batch   (2 GPUs or more) two parallel papermill jobs report the GPU each was given

Everything is written under ``--work`` (a temporary folder by default); results/ and figures/ are
untouched.  ``--device cpu`` lets the CPU stand in for the GPU (the fused path is then compared with
the CPU's plain operations): a check of this script, not of a GPU.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from study import REPOSITORY_ROOT
from study.config import preset_config
from study.device import DistInfo, loader_workers, local_gpu, report
from study.models import build_model
from study.models.fused import plain_operations

CHECKS = ("device", "paths", "cudnn", "resume", "smoke", "study", "ddp", "batch")
SMOKE_MODELS = ("spectrogram", "waveform")
SMOKE_TRAIN_SIZE = 60


class Skip(Exception):
    """A check that cannot run on this machine (e.g. DDP on one GPU)."""


# ---- helpers -------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _command(args: list[str], *, env: dict | None = None, timeout: float = 1800) -> float:
    """Run a command from the repository root; its wall seconds.  Its output's tail is shown when it fails."""
    print("  $ " + shlex.join(args), flush=True)
    started = time.perf_counter()
    done = subprocess.run(args, cwd=REPOSITORY_ROOT, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        raise RuntimeError(f"exit status {done.returncode} after {seconds:.0f} s:\n{tail}")
    for line in done.stdout.splitlines():
        if any(key in line for key in ("parameters | config", "WARNING", "test (")):  # header, warnings, test line
            print("    " + line[:220])
    return seconds


def _run_summary(results_dir: Path) -> dict:
    """The one run stored in ``results_dir``: metrics, timings, epochs, world size."""
    runs = [p for p in (results_dir / "runs").iterdir() if (p / "COMPLETE").is_file()]
    if len(runs) != 1:
        raise RuntimeError(f"{results_dir}: expected one complete run, found {len(runs)}")
    folder = runs[0]
    read = lambda name: json.loads((folder / name).read_text())  # noqa: E731
    metrics, provenance, protocol = read("metrics.json"), read("provenance.json"), read("protocol.json")
    return {"run_id": folder.name, "roc_auc": metrics["overall"]["roc_auc"], "pr_auc": metrics["overall"]["pr_auc"],
            "train_s": provenance["timings"].get("train", float("nan")), "epochs": protocol["training"]["epochs"],
            "world_size": provenance.get("world_size"), "device": provenance["hardware"].get("device_name")}


def _show_run(label: str, run: dict) -> None:
    print(f"  {label:<28} ROC-AUC {run['roc_auc']:.4f}  PR-AUC {run['pr_auc']:.4f}  epochs {run['epochs']}  "
          f"train {run['train_s']:.1f} s  world size {run['world_size']}  ({run['device']})")


def _smoke_args(work: Path, model: str, results: str, device: str) -> list[str]:
    return ["train", "--preset", "smoke", "--model", model, "--train_size", str(SMOKE_TRAIN_SIZE),
            "--cache_dir", str(work / "cache"), "--device", device, "--results-dir", str(work / results)]


def _gpu_count(device: torch.device) -> int:
    return torch.cuda.device_count() if device.type == "cuda" else 0


# ---- the checks ----------------------------------------------------------------------------------
def check_device(device: torch.device, args) -> None:
    from study.batch import job_gpus

    print(f"  torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        print(f"  cuda:{index} {props.name}, {props.total_memory / 2**30:.0f} GiB")
    print("  " + report("auto").replace("\n", "\n  "))
    gpus = _gpu_count(device)
    if gpus:
        print(f"  local ranks 0, 1 -> cuda:{local_gpu(0, gpus)}, cuda:{local_gpu(1, gpus)}; "
              f"with one visible GPU per process -> cuda:{local_gpu(1, 1)}")
        print(f"  study batch --jobs {max(2, gpus)}: CUDA_VISIBLE_DEVICES per job "
              f"{job_gpus(max(2, gpus), os.environ.get('CUDA_VISIBLE_DEVICES'), gpus)}")
    print(f"  loader workers (num_workers -1): {loader_workers(-1, device)} on {device}, "
          f"{loader_workers(-1, device, DistInfo(world_size=2, local_world_size=2))} per process of 2")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA is not available")


def _forward_backward(model: torch.nn.Module, audio: torch.Tensor, labels: torch.Tensor,
                      autocast: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.train()
    model.zero_grad(set_to_none=True)
    with torch.autocast(audio.device.type, dtype=torch.float16, enabled=autocast):
        logits = model(audio)  # (batch, tags)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
    loss.backward()
    grads = {name: p.grad.detach().float().cpu() for name, p in model.named_parameters() if p.grad is not None}
    return logits.detach().float().cpu(), grads


def _worst_relative(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, str]:
    worst = max(a, key=lambda name: float((a[name] - b[name]).norm() / a[name].norm().clamp_min(1e-12)))
    return float((a[worst] - b[worst]).norm() / a[worst].norm().clamp_min(1e-12)), worst


def check_paths(device: torch.device, args) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 on both sides: only summation order differs
        torch.backends.cudnn.allow_tf32 = False
    failures = []
    for name in SMOKE_MODELS:
        cfg = preset_config("smoke").with_overrides(model=name, dropout=0.0)  # CPU and GPU draw other masks
        torch.manual_seed(0)
        model = build_model(cfg.model, n_tags=50, audio_cfg=cfg.audio)
        generator = torch.Generator().manual_seed(1)
        audio = 0.1 * torch.randn(16, 32000, generator=generator)  # (batch, 2 s)
        labels = (torch.rand(16, 50, generator=generator) < 0.2).float()
        fused_logits, fused_grads = _forward_backward(copy.deepcopy(model), audio, labels)
        with plain_operations():
            plain_logits, plain_grads = _forward_backward(copy.deepcopy(model), audio, labels)
        on_device = copy.deepcopy(model).to(device)
        with plain_operations():  # on a GPU the plain operations run anyway; on the stand-in CPU, too
            gpu_logits, gpu_grads = _forward_backward(on_device, audio.to(device), labels.to(device))
        logit_diff = float((fused_logits - gpu_logits).abs().max())
        grad_diff, grad_name = _worst_relative(fused_grads, gpu_grads)
        plain_diff, _ = _worst_relative(fused_grads, plain_grads)
        line = (f"  {name:<12} fused CPU vs {device.type}: logits max |diff| {logit_diff:.2e}, gradients worst "
                f"relative {grad_diff:.2e} ({grad_name}); fused vs plain on CPU {plain_diff:.2e}")
        if device.type == "cuda":
            amp_logits, amp_grads = _forward_backward(on_device, audio.to(device), labels.to(device), autocast=True)
            amp_diff = float(((amp_logits - gpu_logits).norm() / gpu_logits.norm()))
            amp_grad, _ = _worst_relative(gpu_grads, amp_grads)
            line += f"; float16 autocast vs float32: logits relative {amp_diff:.2e}, gradients {amp_grad:.2e}"
            if not amp_diff < 5e-2:
                failures.append(f"{name}: float16 logits differ by {amp_diff:.2e}")
        print(line)
        if not (logit_diff < 1e-3 and grad_diff < 1e-2):
            failures.append(f"{name}: the fused CPU path and the {device.type} path differ "
                            f"(logits {logit_diff:.2e}, gradients {grad_diff:.2e})")
    if failures:
        raise RuntimeError("; ".join(failures))


def check_cudnn(device: torch.device, args) -> None:
    from study.evaluate import predict_clips

    if device.type != "cuda":
        raise Skip("cuDNN runs on CUDA only")
    cfg = preset_config("smoke").with_overrides(model="spectrogram")
    model = build_model(cfg.model, n_tags=50, audio_cfg=cfg.audio).to(device).eval()
    rng = np.random.default_rng(0)

    def clips(offset: int) -> dict[str, np.ndarray]:  # 24 lengths between 3 and 30 s, new ones per call
        return {f"{offset}-{k}": (0.1 * rng.standard_normal(48000 + 17_777 * k + offset)).astype(np.float32)
                for k in range(24)}

    def timed(benchmark: bool, audio: dict[str, np.ndarray]) -> float:
        torch.backends.cudnn.benchmark = benchmark
        _sync(device)
        started = time.perf_counter()
        with torch.inference_mode():
            for samples in audio.values():
                model(torch.from_numpy(samples)[None].to(device))
        _sync(device)
        return time.perf_counter() - started

    timed(False, clips(1))  # warm-up: CUDA context, kernels
    off, on = timed(False, clips(2)), timed(True, clips(3))
    torch.backends.cudnn.benchmark = True
    audio = clips(4)
    _sync(device)
    started = time.perf_counter()
    predict_clips(model, audio.__getitem__, list(audio), patch_samples=48000, hop_samples=48000, whole_clip=True,
                  device=device, batch_size=16)
    _sync(device)
    through = time.perf_counter() - started
    print(f"  24 whole clips of new lengths: benchmarking off {off:.2f} s, on {on:.2f} s; "
          f"predict_clips(whole_clip=True) with benchmarking on outside {through:.2f} s")
    if not torch.backends.cudnn.benchmark:
        raise RuntimeError("predict_clips did not restore cuDNN benchmarking")


def check_resume(device: torch.device, args) -> None:
    from study.checkpoint import LAST, load_checkpoint
    from study.data import load_collection
    from study.data.cache import ensure_cache
    from study.data.patches import RandomPatches
    from study.evaluate import SongSet
    from study.train import train

    cfg = preset_config("smoke").with_overrides(model="spectrogram", cache_dir=str(args.work / "cache"), max_epochs=2,
                                                patience=5)
    cache, collection = ensure_cache(load_collection(cfg.data), cfg.data, cfg.audio, progress=False)
    train_ids, valid_ids = collection.ids("train", 20), collection.ids("valid")
    patch = int(cfg.train.patch_seconds * cfg.audio.sample_rate)

    def run(folder: Path, where: str, stop_after: int | None):
        def stop(epoch, record):
            if epoch == stop_after:
                raise KeyboardInterrupt
        patches = RandomPatches(cache, train_ids, collection.label_rows(train_ids), patch_samples=patch, seed=0)
        valid = SongSet(reader=cache, track_ids=valid_ids, labels=collection.label_rows(valid_ids),
                        patch_samples=patch, hop_samples=patch)
        torch.manual_seed(0)
        model = build_model(cfg.model, n_tags=len(collection.tags), audio_cfg=cfg.audio)
        return train(model, patches, valid=valid, cfg=replace(cfg.train, device=where), checkpoint_dir=folder,
                     tags=collection.tags, is_regression=collection.is_regression, progress=False,
                     log=lambda line: print("    " + line[:200]), on_epoch_end=stop if stop_after else None)

    other = "cpu" if device.type == "cuda" else str(device)
    for number, (first, second) in enumerate((("cpu", str(device)), (str(device), other))):
        folder = args.work / f"resume-{number}"
        try:
            run(folder, first, stop_after=1)
        except KeyboardInterrupt:
            pass
        scaler_before = bool(load_checkpoint(folder / LAST)["scaler_state"])
        result = run(folder, second, stop_after=None)
        scaler_after = bool(load_checkpoint(folder / LAST)["scaler_state"])
        print(f"  {first} -> {second}: scaler state saved {scaler_before} then {scaler_after}; "
              f"{len(result.history)} epochs, stop: {result.stop_reason}")
        if len(result.history) != 2 or result.interruptions != 1:
            raise RuntimeError(f"{first} -> {second}: expected 2 epochs and 1 interruption, got "
                               f"{len(result.history)} and {result.interruptions}")


def check_smoke(device: torch.device, args) -> None:
    python = sys.executable
    seconds = _command([python, "-m", "study", "cache", "--preset", "smoke", "--cache_dir", str(args.work / "cache")])
    print(f"  study cache: {seconds:.0f} s")
    for model in SMOKE_MODELS:
        where = {"one-gpu": str(device), **({"cpu": "cpu"} if args.cpu_baseline else {})}
        for label, name in where.items():
            results = f"smoke-{model}-{label}"
            wall = _command([python, "-m", "study", *_smoke_args(args.work, model, results, name)])
            run = _run_summary(args.work / results)
            _show_run(f"{model} on {name} ({wall:.0f} s wall)", run)
            args.runs[(model, label)] = run


def check_study(device: torch.device, args) -> None:
    if args.quick:
        raise Skip("--quick")
    wall = _command([sys.executable, "-m", "study", "run", "--preset", "smoke", "--results-dir",
                     str(args.work / "study" / "results"), "--figures-dir", str(args.work / "study" / "figures")])
    runs = sorted(p.name for p in (args.work / "study" / "results" / "runs").iterdir())
    print(f"  study run --preset smoke: {len(runs)} runs and the reports in {wall:.0f} s")


def check_ddp(device: torch.device, args) -> None:
    gpus = _gpu_count(device)
    if gpus < 2:
        raise Skip(f"{gpus} GPU(s): two NCCL processes need two GPUs (the CPU tests run two gloo processes)")
    one = args.runs.get(("spectrogram", "one-gpu"))
    if one is None:  # the smoke check did not run: the one-GPU run to compare with
        _command([sys.executable, "-m", "study", *_smoke_args(args.work, "spectrogram", "smoke-spectrogram-one-gpu",
                                                              "auto")])
        one = _run_summary(args.work / "smoke-spectrogram-one-gpu")
    _show_run("one GPU", one)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    one_gpu_each = ("import os, sys; from study.cli import main; gpus = os.environ['GPU_CHECK_GPUS'].split(','); "
                    "os.environ['CUDA_VISIBLE_DEVICES'] = gpus[int(os.environ['LOCAL_RANK'])]; "
                    "sys.exit(main(sys.argv[1:]))")
    variants = {  # label -> (how torchrun starts each process, extra options)
        "2 processes": (["-m", "study"], []),
        "2 processes, sync BN": (["-m", "study"], ["--sync_batchnorm", "true"]),
        # a scheduler that gives each task one GPU: every process sees one, cuda:0, whatever its local rank
        "2 processes, 1 GPU each": (["--no-python", sys.executable, "-c", one_gpu_each], []),
    }
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") or ",".join(str(g) for g in range(gpus))
    failures = []
    for number, (label, (entry, extra)) in enumerate(variants.items()):
        results = f"ddp-{number}"
        wall = _command([*torchrun, *entry, *_smoke_args(args.work, "spectrogram", results, "auto"), *extra, "--force"],
                        env={"GPU_CHECK_GPUS": visible})
        run = _run_summary(args.work / results)
        _show_run(f"{label} ({wall:.0f} s wall)", run)
        if run["world_size"] != 2 or run["run_id"] != one["run_id"]:
            failures.append(f"{label}: world size {run['world_size']}, run id {run['run_id']} (one GPU: {one['run_id']})")
    if failures:
        raise RuntimeError("; ".join(failures))


def check_batch(device: torch.device, args) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from study.batch import _visible_gpus
    from study.progress import GridDisplay
    from study.scheduler import LocalExecutor, Point, run_points

    gpus = _gpu_count(device)
    if gpus < 2:
        raise Skip(f"{gpus} GPU(s): nothing to share out")
    notebook = args.work / "which_gpu.ipynb"
    parameters = new_code_cell('job = 0  # job number\nout = "."  # folder')
    parameters.metadata["tags"] = ["parameters"]
    body = new_code_cell("import json, os, torch\n"
                         "json.dump({'visible': os.environ.get('CUDA_VISIBLE_DEVICES'), 'count': torch.cuda.device_count(),"
                         " 'name': torch.cuda.get_device_name(0), 'uuid': str(torch.cuda.get_device_properties(0).uuid)},"
                         " open(f'{out}/job{job}.json', 'w'))")
    nbformat.write(new_notebook(cells=[parameters, body]), notebook)
    jobs = min(gpus, 4)
    todo = [Point(run_id=f"job{job}", model="none", notebook=str(notebook),
                  output=str(args.work / f"which_gpu-{job}.ipynb"), parameters={"job": job, "out": str(args.work)},
                  log=args.work / f"which_gpu-{job}.log", cwd=str(REPOSITORY_ROOT)) for job in range(jobs)]
    outcomes, _ = run_points(todo, jobs=jobs, executor=LocalExecutor(threads=1, gpus=_visible_gpus(jobs)),
                             display=GridDisplay(total=jobs))
    for outcome in outcomes:
        if outcome.status != "done":
            raise RuntimeError(f"{outcome.point.run_id}: {outcome.error}")
    seen = [json.loads((args.work / f"job{job}.json").read_text()) for job in range(jobs)]
    for job, record in enumerate(seen):
        print(f"  job {job}: CUDA_VISIBLE_DEVICES={record['visible']}, sees {record['count']} GPU ({record['name']}, "
              f"{record['uuid']})")
    if any(record["count"] != 1 for record in seen) or len({record["uuid"] for record in seen}) < 2:
        raise RuntimeError("parallel jobs did not get one GPU of their own each")


# ---- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(CHECKS), help=f"comma-separated checks (default all: {','.join(CHECKS)})")
    parser.add_argument("--quick", action="store_true", help="skip the papermill smoke study")
    parser.add_argument("--cpu-baseline", action="store_true", help="also train the smoke runs on the CPU")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to check this script on a CPU")
    parser.add_argument("--work", default=None, help="folder for caches, runs and notebooks (default: temporary)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(CHECKS))
    if unknown:
        parser.error(f"unknown checks {unknown}; choose from {', '.join(CHECKS)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(report("auto"))
        print("gpu_check: CUDA is not available here; run it on a GPU machine (or --device cpu to check the script)")
        return 2
    args.work = Path(args.work or tempfile.mkdtemp(prefix="gpu-check-"))
    args.work.mkdir(parents=True, exist_ok=True)
    args.runs = {}
    print(f"gpu_check on {device}; work folder {args.work}", flush=True)
    outcomes = []
    for name in chosen:
        print(f"\n== {name}", flush=True)
        started = time.perf_counter()
        try:
            globals()[f"check_{name}"](device, args)
            outcome = "ok"
        except Skip as why:
            outcome = f"skipped: {why}"
        except Exception as error:  # report, and go on with the other checks
            traceback.print_exc(limit=3)
            outcome = f"FAILED: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        seconds = time.perf_counter() - started
        print(f"  -> {outcome} ({seconds:.0f} s)", flush=True)
        outcomes.append((name, outcome, seconds))
    print("\ncheck    seconds  outcome")
    for name, outcome, seconds in outcomes:
        print(f"{name:<8} {seconds:>7.0f}  {outcome}")
    return 1 if any(outcome.startswith("FAILED") for _, outcome, _ in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
