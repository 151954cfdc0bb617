"""Peak memory of this process on its device: CUDA's allocator peak, or the CPU process's peak resident set."""

from __future__ import annotations

import resource

import torch


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is KiB on Linux: the process's peak resident memory
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
