"""Where a run computes: device choice, mixed precision, seeds, and torchrun process groups.

The same code runs on a laptop CPU, one GPU, or several GPUs and nodes launched by ``torchrun``
(which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT); nothing hard-codes
``.cuda()``.  Mixed precision is used on CUDA only: CPU and MPS train in float32.
"""
from __future__ import annotations

import contextlib
import ctypes
import datetime
import os
import random
import shutil
import sys
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist

AUTO_WORKERS = -1  # TrainConfig.num_workers: chosen for the device by loader_workers()


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, saves checkpoints, and scores and writes the run."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def launch_info() -> DistInfo:
    """This process's place as torchrun describes it in the environment, before (or without) joining a group.

    Work that may take hours (decoding the audio cache) runs before the process group exists, so
    no collective operation can time out while it runs (study.experiment).
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistInfo()
    local_rank = _env_int("LOCAL_RANK", 0)
    return DistInfo(rank=_env_int("RANK", 0), world_size=world_size, local_rank=local_rank,
                    local_world_size=_env_int("LOCAL_WORLD_SIZE", local_rank + 1))


def local_gpu(local_rank: int, visible_gpus: int) -> int:
    """The one rule for this process's GPU: its local rank modulo the GPUs it can see.

    torchrun starts one process per GPU with local ranks 0..N-1 and every GPU visible; a scheduler
    that gives each task its own ``CUDA_VISIBLE_DEVICES`` (SLURM) leaves each process one visible
    GPU, index 0, whatever its local rank.
    """
    if visible_gpus < 1:
        raise ValueError(f"local rank {local_rank} needs a GPU but none is visible (CUDA_VISIBLE_DEVICES="
                         f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r})")
    return local_rank % visible_gpus


def setup_distributed(device: str = "auto", *, backend: str | None = None) -> DistInfo:
    """Join the process group torchrun describes in the environment; one process needs nothing.

    The backend is NCCL when the processes train on CUDA (each on the GPU :func:`local_gpu`
    picks, also given to the group as ``device_id``), gloo otherwise (CPU, or a test).  Calling
    it again in a process that already joined returns the same description.
    """
    info = launch_info()
    if not info.distributed:
        return info
    chosen = resolve_device(device, info)
    on_cuda = chosen.type == "cuda"
    if on_cuda:
        torch.cuda.set_device(chosen)
    if not torch_dist.is_initialized():
        # rank 0 scores the test set and writes the run while the others wait: allow hours, not the default minutes
        torch_dist.init_process_group(backend=backend or ("nccl" if on_cuda else "gloo"), init_method="env://",
                                      rank=info.rank, world_size=info.world_size,
                                      timeout=datetime.timedelta(hours=2), device_id=chosen if on_cuda else None)
    return replace(info, rank=torch_dist.get_rank(), world_size=torch_dist.get_world_size())


def teardown_distributed() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint); a no-op for one process."""
    if info.distributed:
        torch_dist.barrier()


def broadcast_from_main(info: DistInfo, value):
    """Rank 0's ``value`` on every rank (a picklable object, e.g. the early-stopping decision)."""
    if not info.distributed:
        return value
    box = [value]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_all(info: DistInfo, value) -> list:
    """Every rank's ``value`` (picklable), in rank order, on every rank; ``[value]`` for one process."""
    if not info.distributed:
        return [value]
    values = [None] * info.world_size
    torch_dist.all_gather_object(values, value)
    return values


def resolve_device(name: str = "auto", info: DistInfo = DistInfo()) -> torch.device:
    """'auto' -> CUDA (this rank's GPU), else Apple MPS, else CPU; an explicit name is checked.

    Under torchrun each process takes the GPU :func:`local_gpu` picks; an explicit ``cuda:N``
    that names another one is refused rather than putting two processes on one GPU.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_gpu(info.local_rank, torch.cuda.device_count()))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not a torch device; expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = idle_gpu_warning()
            raise ValueError(f"device {name!r} was asked for but CUDA is not available; use --device auto or cpu"
                             + (f" ({why})" if why else ""))
        ours = local_gpu(info.local_rank, torch.cuda.device_count())
        if device.index is None:
            device = torch.device("cuda", ours)
        elif info.distributed and device.index != ours:
            raise ValueError(f"device {name!r}: under torchrun local rank {info.local_rank} uses cuda:{ours} "
                             f"(its local rank modulo the {torch.cuda.device_count()} visible GPUs); "
                             f"use --device cuda or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for but MPS is not available; use --device auto or cpu")
    return device


def nvidia_present() -> bool:
    """Whether this machine seems to have an NVIDIA GPU, whatever torch can use (driver or nvidia-smi)."""
    return Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None


def idle_gpu_warning() -> str:
    """Why torch cannot use the NVIDIA GPU this machine seems to have ('' when it can, or there is none)."""
    if torch.cuda.is_available() or not nvidia_present():
        return ""
    if torch.version.cuda is None:
        return (f"this machine has an NVIDIA GPU but torch {torch.__version__} is a CPU build; install the CUDA "
                f"build (make study TORCH_SPEC=torch, or pip install torch from the CUDA index)")
    return (f"this machine has an NVIDIA GPU but torch {torch.__version__} (CUDA {torch.version.cuda}) cannot use it; "
            f"check the driver and CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}")


def loader_workers(requested: int, device: torch.device, info: DistInfo = DistInfo()) -> int:
    """DataLoader worker processes: ``requested``, or for -1 (automatic) none on CPU and MPS, where
    workers would take cores from training, and on CUDA a share of this machine's cores for each
    process (at most 4: a patch is one read from the memory-mapped cache)."""
    if requested >= 0:
        return requested
    if requested != AUTO_WORKERS:
        raise ValueError(f"num_workers {requested}: expected -1 (automatic) or a number of workers >= 0")
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores // max(1, info.local_world_size) - 1))


def amp_enabled(device: torch.device, requested: bool) -> bool:
    """Mixed precision (float16 autocast + GradScaler) on CUDA only; CPU and MPS stay float32."""
    return bool(requested) and device.type == "cuda"


def autocast(device: torch.device, enabled: bool):
    """float16 autocast on CUDA when enabled; otherwise a context that changes nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def describe(device: torch.device, amp: bool, info: DistInfo = DistInfo()) -> str:
    """e.g. 'cuda:0 (NVIDIA H100, float16 autocast), 2 processes'."""
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)}, {'float16 autocast' if amp else 'float32'})"
    else:
        name += " (float32)"
    if info.distributed:
        name += f", {info.world_size} processes"
    return name


# ---- memory ------------------------------------------------------------------------------------
@cache
def keep_freed_memory() -> bool:
    """Let glibc's allocator keep large freed blocks instead of handing them back to the OS.

    By default glibc maps every block over 32 MB afresh and unmaps it when freed, so each training
    step pays page faults for every large activation it allocates: about a quarter of a CPU
    step's time here (benchmarks/bench_speed.py).  Raising the mapping and trimming thresholds
    (``mallopt``) makes freed blocks reusable within the process.  Linux with glibc only; elsewhere,
    or when the environment already sets ``MALLOC_MMAP_THRESHOLD_``, nothing changes.  Returns
    whether the thresholds were set.
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim_threshold, mmap_threshold = -1, -3  # mallopt parameter numbers from <malloc.h>
        return bool(libc.mallopt(mmap_threshold, 2**30) and libc.mallopt(trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False


# ---- seeds and determinism ----------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed python, numpy's global generator and torch (every CUDA device too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*parts: int) -> int:
    """A well-mixed 32-bit seed from several integers, e.g. (run seed, epoch, rank)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels where torch has them (warning, not failing, where it has none).

    Off: cuDNN may benchmark and pick the fastest (possibly non-deterministic) algorithms.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    if torch.are_deterministic_algorithms_enabled() != enabled:  # the call imports torch's compiler: seconds
        torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


@contextlib.contextmanager
def cudnn_benchmark_off(off: bool = True):
    """cuDNN benchmarking off inside this block when ``off`` (restored after).

    Benchmarking tunes the convolution algorithms once per input shape: it pays with training's
    fixed-length patches, but whole clips of varying lengths (``whole_clip``) would re-tune for
    nearly every batch.
    """
    before = torch.backends.cudnn.benchmark
    if off:
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def report(name: str = "auto") -> str:
    """One line on the device a run would use, and a warning line when a GPU is left idle (``make`` prints it)."""
    device = resolve_device(name, launch_info())
    line = f"device {describe(device, amp_enabled(device, True))}; torch {torch.__version__}"
    warning = idle_gpu_warning() if device.type == "cpu" else ""
    return line + (f"\nWARNING: {warning}" if warning else "")


if __name__ == "__main__":
    print(report(sys.argv[1] if len(sys.argv) > 1 else "auto"))
