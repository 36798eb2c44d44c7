"""One timed workload, run in a fresh process against whichever copy of ``study`` is first on the path.

``bench_speed.py`` starts this script with ``PYTHONPATH`` pointing at the source tree it measures
(this working tree, or an older commit checked out beside it), so the same probe times both.  Each
probe prints one JSON line: ``{"workload": ..., "clips_per_s": ..., "seconds": ...}``.

    python benchmarks/probes.py train --model waveform --train-size 1000 --epochs 3 --work /tmp/x
    python benchmarks/probes.py step --model spectrogram --seconds 15 --batch 8 --steps 3 --paper
    python benchmarks/probes.py profile --model waveform --steps 5
    python benchmarks/probes.py samplecnn --work /tmp/x --patches 320 --batch 16
    python benchmarks/probes.py tag --audio song.wav --repeats 5
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from timing import median_seconds  # benchmarks/timing.py, beside this script


def _known(fields: dict) -> dict:
    """The fields this copy of study knows (an older commit lacks the newer ones; they keep their meaning)."""
    from study.config import RunConfig

    names = RunConfig.flat_fields()
    return {name: value for name, value in fields.items() if name in names}


def train(args: argparse.Namespace) -> dict:
    """The default preset's whole training of one model: patches from the cached corpus, steps, a
    validation pass after every epoch and checkpoints; clips per second from the run's own training time."""
    from study.config import RunConfig
    from study.experiment import run_experiment
    from study.results import read_json

    work = Path(args.work)
    # the same job on both sides: one corpus (the older preset's 1,300 clips, float32 cache), one patch per
    # clip per epoch, fixed epochs, no early stop, the MSE loss and the learning rate the older preset used
    cfg = RunConfig.from_flat("default", **_known({
        "model": args.model, "train_size": args.train_size, "max_epochs": args.epochs, "patience": args.epochs,
        "seed": 0, "loss": "mse", "learning_rate": 1e-3, "epoch_patches": 0, "lr_patience": 0,
        "corpus_size": 1300, "cache_dtype": "float32", "cache_dir": str(work / "cache"), "bootstrap_samples": 10}))
    run_dir = run_experiment(cfg, results_dir=work / "results", force=True)
    seconds = read_json(run_dir, "provenance.json")["timings"]["train"]
    return {"clips_per_s": args.epochs * args.train_size / seconds, "seconds": seconds}


def training_step(args: argparse.Namespace, *, paper: bool = False):
    """A default-preset model (the paper's x1 512/500 with ``paper``) and one closure that runs a
    forward + backward + Adam step on a fixed random batch; freed memory is kept in the process as
    this tree's training loop keeps it (an older tree has no such call)."""
    from study.config import preset_config
    from study.models import build_model

    try:
        from study.device import keep_freed_memory
        keep_freed_memory()
    except ImportError:
        pass
    cfg = preset_config(args.preset).with_overrides(model=args.model)
    if paper:  # the paper's basic configuration (§4): x1 front-end, 512 filters / 500 units
        cfg = cfg.with_overrides(frontend_multiplier=1.0, backend_filters=512, dense_units=500)
    model = build_model(cfg.model, n_tags=args.n_tags, audio_cfg=cfg.audio)
    samples = model.fixed_samples or int(round(args.seconds * cfg.audio.sample_rate))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(args.batch, samples, generator=generator)
    labels = (torch.rand(args.batch, args.n_tags, generator=generator) < 0.1).float()
    model.train()

    def one() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.binary_cross_entropy_with_logits(model(audio), labels).backward()
        optimizer.step()

    return model, one


def step(args: argparse.Namespace) -> dict:
    """Forward + backward + Adam on random patches (the training step alone), after one warm-up step."""
    _, one = training_step(args, paper=args.paper)
    seconds = median_seconds(one, args.steps)
    return {"clips_per_s": args.batch / seconds, "seconds": seconds}


def profile(args: argparse.Namespace) -> dict:
    """One default-preset training step against the machine's matrix-product speed: the step's
    convolution and matmul work (torch's flop counter on the plain operations, so both sides count
    the same arithmetic), its median time, the GFLOP/s that makes, the fraction of a 2048 x 2048
    float32 product's GFLOP/s it reaches, and the operators taking the most time."""
    from contextlib import nullcontext

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    from torch.utils.flop_counter import FlopCounterMode

    try:
        from study.models.fused import plain_operations
    except ImportError:  # an older tree has only the plain operations
        plain_operations = nullcontext
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    peak = 2 * 2048**3 / median_seconds(lambda: a @ b, 5) / 1e9
    _, one = training_step(args)
    with plain_operations(), FlopCounterMode(display=False) as counter:
        one()
    step_seconds = median_seconds(one, args.steps)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        one()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    gflops = counter.get_total_flops() / step_seconds / 1e9
    print("top operators (self CPU %): " + ", ".join(f"{e.key} {100 * e.self_cpu_time_total / total:.0f}%"
                                                      for e in events[:8]), file=sys.stderr)
    return {"clips_per_s": args.batch / step_seconds, "seconds": step_seconds, "gflop": counter.get_total_flops() / 1e9,
            "gflops": gflops, "peak_gflops": peak, "fraction": gflops / peak}


def samplecnn(args: argparse.Namespace) -> dict:
    """SampleCNN trained by the study's own path: the corpus cache, random 59,049-sample patches,
    batches of ``--batch``, BCE, Adam; ``--patches`` patches in one epoch, validated on the 34
    validation clips of a 330-clip corpus."""
    from study.config import RunConfig
    from study.experiment import run_experiment
    from study.results import read_json

    work = Path(args.work)
    cfg = RunConfig.from_flat("default", **_known({
        "model": "samplecnn", "train_size": args.clips, "max_epochs": 1, "patience": 1, "seed": 0, "loss": "bce",
        "batch_size": args.batch, "epoch_patches": args.patches, "corpus_size": 330, "cache_dir": str(work / "cache"),
        "bootstrap_samples": 10}))
    run_dir = run_experiment(cfg, results_dir=work / "results", force=True)
    seconds = read_json(run_dir, "provenance.json")["timings"]["train"]
    return {"clips_per_s": args.patches / seconds, "seconds": seconds}


def tag(args: argparse.Namespace) -> dict:
    """Seconds to tag one decoded song with MTT_musicnn, model loaded (median of ``--repeats``)."""
    from study.audio import load_audio
    from study.pretrained import load_pretrained
    from study.tag import tag_audio

    model, meta = load_pretrained("MTT_musicnn")
    audio = load_audio(args.audio)
    seconds = median_seconds(lambda: tag_audio(audio, model, meta), args.repeats)
    return {"seconds": seconds, "clips_per_s": 1 / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=("train", "step", "profile", "samplecnn", "tag"))
    parser.add_argument("--model", default="spectrogram")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--paper", action="store_true")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--n-tags", type=int, default=50)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--patches", type=int, default=320)
    parser.add_argument("--audio", default="")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default="")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work = args.work or tempfile.mkdtemp(prefix="probe-")
    result = {"train": train, "step": step, "profile": profile, "samplecnn": samplecnn, "tag": tag}[args.workload](args)
    print(json.dumps({"workload": args.workload, **{k: float(v) for k, v in result.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
