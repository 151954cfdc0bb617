"""Peak memory of this process on its device: CUDA's allocator peak, or the CPU process's peak resident set."""

from __future__ import annotations

import contextlib
import resource
from pathlib import Path

import torch


def reset_peak_memory(device: torch.device) -> None:
    """Start the peak count afresh: CUDA's allocator stats, or Linux's resident high-water mark (VmHWM)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # elsewhere the peak stays the process's since it started
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)


def peak_memory_mib(device: torch.device) -> float:
    """The peak since the last reset_peak_memory (or the process's start): CUDA's allocated peak, or the
    resident high-water mark (VmHWM on Linux, ru_maxrss elsewhere)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS
