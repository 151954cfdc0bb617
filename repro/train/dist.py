"""Process groups for DDP under torchrun / accelerate (NCCL on GPUs, gloo on CPUs) and small collectives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(cpu: bool = False) -> DistInfo:
    """Join the process group torchrun/accelerate describe in the environment; a no-op for one process.

    NCCL when the processes train on GPUs, gloo on CPUs (`cpu`: the recipe pins model.device=cpu).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and not cpu else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def unwrap(model: Any) -> Any:
    """The model under DDP / DataParallel / torch.compile wrappers (peft models forward attributes themselves):
    the module whose adapters, generate() and parameters' names the rest of the kit reads."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel | torch.nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum over processes, on the tensor's own device (NCCL reduces on the GPU, so it travels there)."""
    return _all_reduce(value, dist.ReduceOp.SUM) if dist.is_initialized() else value


def all_reduce_max(value: torch.Tensor) -> torch.Tensor:
    """The element-wise max over processes, on the tensor's own device."""
    return _all_reduce(value, dist.ReduceOp.MAX) if dist.is_initialized() else value


def _all_reduce(value: torch.Tensor, op: Any) -> torch.Tensor:
    home = value.device
    comm = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    reduced = value.detach().to(comm, copy=True)
    dist.all_reduce(reduced, op=op)
    return reduced.to(home)


def broadcast_object(obj: Any) -> Any:
    """Rank 0's value on every rank (e.g. the run folder, whose name holds rank 0's clock)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order (one process: `[obj]`)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
