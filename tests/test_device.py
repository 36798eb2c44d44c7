"""Where a run computes: the GPU rule, torchrun's environment, loader workers, cuDNN tuning, idle-GPU warnings.

No test here pretends that a GPU exists: the decisions are tested as the functions that make them
(a local rank and a number of visible GPUs in, an index out); benchmarks/gpu_check.py runs them on
a GPU.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import study.device
from study.config import TrainConfig
from study.device import (AUTO_WORKERS, DistInfo, cudnn_benchmark_off, idle_gpu_warning, launch_info, loader_workers,
                          local_gpu, report, resolve_device)
from study.evaluate import predict_clips


def test_one_gpu_per_process_by_local_rank_modulo_the_visible_gpus():
    assert [local_gpu(rank, 4) for rank in range(4)] == [0, 1, 2, 3]  # torchrun: every GPU visible
    assert [local_gpu(rank, 1) for rank in range(4)] == [0, 0, 0, 0]  # SLURM: one visible GPU per task
    assert local_gpu(5, 2) == 1
    with pytest.raises(ValueError, match="local rank 1 needs a GPU but none is visible"):
        local_gpu(1, 0)


def test_launch_info_reads_torchrun_environment_without_joining(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launch_info() == DistInfo()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    info = launch_info()
    assert info == DistInfo(rank=3, world_size=4, local_rank=1, local_world_size=2)
    assert info.distributed and not info.is_main
    assert not torch.distributed.is_initialized()
    monkeypatch.setenv("RANK", "three")
    with pytest.raises(ValueError, match="RANK='three' is not an integer"):
        launch_info()


def test_an_explicit_cpu_device_is_kept_under_torchrun():
    assert resolve_device("cpu", DistInfo(rank=1, world_size=2, local_rank=1)) == torch.device("cpu")


def test_loader_workers_are_automatic_on_cuda_only():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)  # device names only: nothing runs on them
    assert TrainConfig().num_workers == AUTO_WORKERS
    assert loader_workers(AUTO_WORKERS, cpu) == 0  # workers would take cores from training
    assert 1 <= loader_workers(AUTO_WORKERS, cuda) <= 4
    assert loader_workers(AUTO_WORKERS, cuda, DistInfo(world_size=64, local_world_size=64)) == 1
    assert loader_workers(3, cpu) == 3 and loader_workers(0, cuda) == 0  # an explicit number is kept
    with pytest.raises(ValueError, match="num_workers -2"):
        loader_workers(-2, cpu)


class _RecordsCudnnBenchmark(torch.nn.Module):
    """Logits of zeros; remembers the cuDNN benchmarking flag each forward saw."""

    min_samples, fixed_samples = 1, None

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[bool] = []

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.backends.cudnn.benchmark)
        return torch.zeros(len(waveform), 2) + self.weight


@pytest.mark.parametrize("whole_clip, expected", [(True, False), (False, True)])
def test_cudnn_benchmarking_is_off_while_whole_clips_are_predicted(monkeypatch, whole_clip, expected):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    model = _RecordsCudnnBenchmark()
    clips = {"a": np.zeros(300, np.float32), "b": np.zeros(500, np.float32)}  # two lengths
    predict_clips(model, clips.__getitem__, list(clips), patch_samples=100, hop_samples=100, whole_clip=whole_clip)
    assert model.seen and set(model.seen) == {expected}
    assert torch.backends.cudnn.benchmark is True  # restored
    with cudnn_benchmark_off(False):
        assert torch.backends.cudnn.benchmark is True


def test_a_machine_with_an_nvidia_gpu_but_no_usable_cuda_gets_a_warning(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("torch uses this machine's GPU: nothing to warn about")
    monkeypatch.setattr(study.device, "nvidia_present", lambda: False)
    assert idle_gpu_warning() == "" and "WARNING" not in report("cpu")
    monkeypatch.setattr(study.device, "nvidia_present", lambda: True)  # as if the driver were installed
    warning = idle_gpu_warning()
    assert "NVIDIA GPU" in warning and torch.__version__ in warning
    if torch.version.cuda is None:
        assert "CPU build" in warning and "TORCH_SPEC=torch" in warning
    assert report("auto").splitlines()[-1] == f"WARNING: {warning}"
    assert report("auto").startswith("device cpu")
    with pytest.raises(ValueError, match="CUDA is not available.*NVIDIA GPU"):
        resolve_device("cuda")
