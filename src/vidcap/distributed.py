"""torch.distributed helpers: one code path for 1 and N processes.

Shared by training (DDP, global-batch contrastive loss), evaluation and captioning (sharded over
ranks, gathered at the end), so it sits below all of them. `torchrun --nproc_per_node N -m vidcap
train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; a plain `vidcap train` runs as rank 0 of 1 without
initialising a process group. NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from vidcap.errors import ConfigError, VidcapError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0, *, key: str = "device") -> torch.device:
    """`auto` gives this process's CUDA device when there is one, else the CPU; `cuda` is this
    process's GPU (`cuda:<local rank>`). ConfigError (naming `key`) for a name that is not a
    device, or a device this machine does not have."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{key}: {name!r} is not a device (expected auto, cpu, cuda or "
                          "cuda:N)") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"{key}: {name!r} is not supported (expected auto, cpu, cuda or "
                          "cuda:N)")
    if not torch.cuda.is_available():
        built = "with" if torch.backends.cuda.is_built() else "without"
        raise ConfigError(f"{key}: {name!r} asked for, but no CUDA device is available (torch "
                          f"{torch.__version__} is built {built} CUDA); use cpu or auto")
    index = local_rank if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ConfigError(f"{key}: {name!r} asks for GPU {index}, but this machine has "
                          f"{torch.cuda.device_count()}")
    return torch.device("cuda", index)


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes in the environment (or run alone); the device
    is checked first (`pick_device`, as `train.device`)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device, local_rank, key="train.device")
    if world_size > 1 and not dist.is_initialized():
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank, chosen)


def is_initialized() -> bool:
    """Whether this process is part of a process group."""
    return dist.is_available() and dist.is_initialized()


def is_distributed() -> bool:
    """Whether this process runs beside others (a process group of two or more)."""
    return is_initialized() and dist.get_world_size() > 1


def teardown_distributed() -> None:
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (and torch.compile) wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def all_reduce_mean(value: float, device: torch.device) -> float:
    """Mean of a number over all processes (the number itself when alone)."""
    if not is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


def gather_objects(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order (a one-element list when alone)."""
    if not is_initialized():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every process."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(action: Callable[[], T]) -> T | None:
    """Run `action` on rank 0 alone (None elsewhere). A VidcapError it raises stops every
    process, not just rank 0: the others raise one quoting it instead of waiting forever at the
    next collective call."""
    error: VidcapError | None = None
    result = None
    if not is_initialized() or dist.get_rank() == 0:
        try:
            result = action()
        except VidcapError as err:
            error = err
    message = broadcast_object(None if error is None else str(error))
    if error is not None:
        raise error
    if message is not None:
        raise VidcapError(f"the main process stopped: {message}")
    return result
