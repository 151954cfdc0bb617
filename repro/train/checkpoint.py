"""Resumable runs: atomic step checkpoints of trainable weights, optimizer, scheduler, run state and RNG."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from repro.errors import ReproError
from repro.fsio import swap_folder

WEIGHTS = "adapter.safetensors"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
STATE = "state.json"
RNG = "rng.pt"
COMPLETE = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any | None,
    state: dict[str, Any],
    keep_last: int | None = 2,
) -> Path:
    """Write RUN/checkpoints/step-XXXXXX/ atomically and return it; prune to the newest `keep_last` (None: all).

    Weights are the parameters with requires_grad (the adapters under LoRA, everything in full fine-tuning),
    by name; pass the unwrapped model (not DDP's wrapper, whose names carry a `module.` prefix). `state` must
    be JSON-serialisable. In multi-process runs one rank saves; the RNG states saved are that rank's.
    """
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    if "step" in state and state["step"] != step:
        raise ValueError(f"state['step'] is {state['step']}, but the checkpoint is for step {step}")
    root = Path(run_dir) / "checkpoints"
    final = root / f"step-{step:06d}"
    tmp = root / f"{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        weights = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}
        save_file(weights, tmp / WEIGHTS, metadata={"step": str(step)})
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER)
        if scheduler is not None:
            torch.save(scheduler.state_dict(), tmp / SCHEDULER)
        (tmp / STATE).write_text(json.dumps({**state, "step": step}, indent=2, ensure_ascii=False) + "\n")
        torch.save(_rng_state(), tmp / RNG)
        for f in tmp.iterdir():
            _fsync(f)
        (tmp / COMPLETE).write_text(f"{step}\n")
        _fsync(tmp / COMPLETE)
        swap_folder(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep_last)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest RUN/checkpoints/step-XXXXXX/ with its COMPLETE marker, or None."""
    complete = _complete_checkpoints(Path(run_dir) / "checkpoints")
    return complete[-1][1] if complete else None


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG states from a checkpoint folder; returns state.json's dict."""
    path = Path(path)
    if not (path / COMPLETE).is_file():
        raise ReproError(f"checkpoint '{path}' is incomplete (no {COMPLETE} marker); resume from latest_checkpoint()")
    _load_weights(path / WEIGHTS, model)
    if optimizer is not None:
        optimizer.load_state_dict(_torch_load(path / OPTIMIZER))
    if scheduler is not None:
        scheduler.load_state_dict(_torch_load(path / SCHEDULER))
    _set_rng_state(_torch_load(path / RNG))
    return json.loads((path / STATE).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Weights


def _load_weights(file: Path, model: torch.nn.Module) -> None:
    saved = load_file(file, device="cpu")
    params = dict(model.named_parameters())
    missing = [name for name in saved if name not in params]
    if missing:
        raise ReproError(
            f"checkpoint '{file.parent}': parameter '{missing[0]}' ({len(missing)} in all) is not in the model; "
            "was it saved from another model or LoRA set-up?"
        )
    unsaved = [name for name, p in params.items() if p.requires_grad and name not in saved]
    if unsaved:
        raise ReproError(
            f"checkpoint '{file.parent}': trainable parameter '{unsaved[0]}' ({len(unsaved)} in all) was not saved; "
            "was it saved from another model or LoRA set-up?"
        )
    for name, tensor in saved.items():
        if params[name].shape != tensor.shape:
            raise ReproError(
                f"checkpoint '{file.parent}': parameter '{name}' has shape {tuple(tensor.shape)}, "
                f"the model's is {tuple(params[name].shape)}"
            )
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor)


def _torch_load(file: Path) -> Any:
    if not file.is_file():
        raise ReproError(f"checkpoint '{file.parent}' has no {file.name}")
    return torch.load(file, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------
# RNG: everything as tensors, numbers and strings, so torch.load(weights_only=True) reads it back


def _rng_state() -> dict[str, Any]:
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss_next},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    try:
        import numpy as np
    except ImportError:
        return state
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state["numpy"] = {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        n = min(len(state["cuda"]), torch.cuda.device_count())
        for device, cuda_state in enumerate(state["cuda"][:n]):
            torch.cuda.set_rng_state(cuda_state, device)
    if "numpy" in state:
        try:
            import numpy as np
        except ImportError:
            return
        npy = state["numpy"]
        keys = npy["keys"].numpy().astype(np.uint32)
        np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))


# ---------------------------------------------------------------------------------------------
# Folders


def _complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _STEP_DIR.match(entry.name)
        if match and entry.is_dir() and (entry / COMPLETE).is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _prune(root: Path, keep_last: int | None) -> None:
    if keep_last is not None:
        for _, old in _complete_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    # left by a save that was killed; this process's own temp folder was already renamed
    for entry in root.iterdir():
        if (".tmp-" in entry.name or ".old-" in entry.name) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _fsync(file: Path) -> None:
    with open(file, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms that cannot open a folder
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
