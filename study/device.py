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
import sys
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates and writes checkpoints and results."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def setup_distributed(device: str = "auto", *, backend: str | None = None) -> DistInfo:
    """Join the process group torchrun describes in the environment; one process needs nothing.

    The backend is NCCL when the processes train on CUDA, gloo otherwise (CPU, or a test).
    Calling it again in a process that already joined returns the same description.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    on_cuda = torch.cuda.is_available() and (device == "auto" or device.startswith("cuda"))
    if on_cuda:
        torch.cuda.set_device(local_rank)  # one GPU per process, as torchrun launches them
    if not torch_dist.is_initialized():
        # rank 0 validates and tests alone while the others wait: allow hours, not the default minutes
        torch_dist.init_process_group(backend=backend or ("nccl" if on_cuda else "gloo"), init_method="env://",
                                      rank=rank, world_size=world_size, timeout=datetime.timedelta(hours=2))
    return DistInfo(rank=torch_dist.get_rank(), world_size=torch_dist.get_world_size(), local_rank=local_rank)


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


def resolve_device(name: str = "auto", info: DistInfo = DistInfo()) -> torch.device:
    """'auto' -> CUDA (this rank's GPU), else Apple MPS, else CPU; an explicit name is checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", info.local_rank % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not a torch device; expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available; use --device auto or cpu")
        if device.index is None:
            device = torch.device("cuda", info.local_rank % torch.cuda.device_count())
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for but MPS is not available; use --device auto or cpu")
    return device


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
