"""What `repro env` reports: library versions, devices, and the backend choices the kit would make here."""

from __future__ import annotations

import importlib.metadata
import os
import platform

import torch

from repro.modeling import flash_attn_available, pick_attention, pick_device, pick_dtype

LIBRARIES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def devices() -> list[str]:
    if torch.cuda.is_available():
        rows = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            rows.append(f"cuda:{i} {props.name}, {props.total_memory / 2**30:.1f} GiB")
        return rows
    return [f"cpu: {os.cpu_count()} cores, {_ram_gib():.1f} GiB RAM"]


def _ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def four_bit_check(device: torch.device, dtype: torch.dtype) -> str:
    """Quantise one small layer to nf4 on `device` and run it; 'yes' or the reason it failed."""
    try:
        import bitsandbytes as bnb
    except Exception as exc:  # missing, or a build that does not load on this machine
        return f"no (bitsandbytes: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    try:
        layer = bnb.nn.Linear4bit(64, 64, compute_dtype=dtype, quant_type="nf4").to(device)
        out = layer(torch.randn(2, 64, dtype=dtype, device=device))
        if not bool(torch.isfinite(out).all()):
            return "no (non-finite output)"
    except Exception as exc:
        return f"no ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return f"yes (nf4 on {device.type})"


def env_rows() -> list[tuple[str, str]]:
    rows = list(library_versions().items())
    rows += [("device", d) for d in devices()]
    device = pick_device("auto")
    dtype = pick_dtype("auto", device)
    rows.append(("flash-attn", "imports" if flash_attn_available() else "not available"))
    rows.append(("attention (auto)", pick_attention("auto", device)))
    rows.append(("dtype (auto)", str(dtype).removeprefix("torch.")))
    rows.append(("4-bit loading", four_bit_check(device, dtype)))
    return rows
