"""Test helper: what the first optimizer step receives — each trainable tensor's gradient, before and after.

Run as `python tests/first_step_capture.py OUT.pt sft RECIPE ...`, alone or under torchrun (each process writes
OUT.pt with `-rank<RANK>` before the suffix); in-process, `capture_first_step(path)` installs the same hooks.
The file holds, in the optimizer's parameter order: "grads" (the gradient the update is made from, after the
engine's averaging and clipping), "before" and "after" (the tensors around that update) and the optimizer's
hyper-parameters ("lr", "eps", "betas", "weight_decay").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def capture_first_step(path: Path) -> list:
    """Hooks that save the first optimizer step to `path`; returns their handles (call .remove() on each)."""
    seen: dict = {}

    def before(optimizer, args, kwargs):
        if "grads" not in seen:
            group = optimizer.param_groups[0]
            params = _params(optimizer)
            seen.update(
                grads=[torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params],
                before=[p.detach().clone() for p in params],
                lr=float(group["lr"]),
                eps=float(group["eps"]),
                betas=tuple(group["betas"]),
                weight_decay=float(group["weight_decay"]),
            )

    def after(optimizer, args, kwargs):
        if "after" not in seen:
            seen["after"] = [p.detach().clone() for p in _params(optimizer)]
            torch.save(seen, path)

    return [register_optimizer_step_pre_hook(before), register_optimizer_step_post_hook(after)]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's repro, whatever is installed
    out = Path(sys.argv[1])
    rank = os.environ.get("RANK")
    capture_first_step(out if rank is None else out.with_name(f"{out.stem}-rank{rank}{out.suffix}"))
    from repro.cli import main

    main(sys.argv[2:])
