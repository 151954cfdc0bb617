"""Test helper: what the first optimizer step receives — each trainable tensor's gradient, before and after.

Run as `python tests/first_step_capture.py OUT.pt sft RECIPE ...`, alone or under torchrun (each process writes
OUT.pt with `-rank<RANK>` before the suffix); in-process, `capture_first_step(path)` installs the same hooks.
The file holds, in the optimizer's parameter order: "grads" (the gradient the update is made from, after the
engine's averaging and clipping), "before" and "after" (the tensors around that update) and the optimizer's
hyper-parameters ("lr", "eps", "betas", "weight_decay").
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
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


def load_step(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def first_row(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])


def adam_first_update(step: dict) -> list[torch.Tensor]:
    """AdamW's first update of each tensor: m = (1 - b1) g and v = (1 - b2) g^2, bias-corrected back to g and
    g^2, so the step is -lr * g / (|g| + eps), after the decoupled decay w * (1 - lr * wd)."""
    lr, eps, wd = step["lr"], step["eps"], step["weight_decay"]
    return [
        w.double() * (1 - lr * wd) - lr * g.double() / (g.double().abs() + eps) - w.double()
        for w, g in zip(step["before"], step["grads"], strict=True)
    ]


def assert_same_first_step(a: Path, b: Path, step_a: dict, step_b: dict) -> None:
    """What "steps like one big batch" claims: the same loss over the same units, and the same averaged
    gradient — the engine's sum of per-token gradients times world_size / units — as the optimizer gets it.

    The gradients may differ only by float32 summation order (one backward over 4 samples or 2 + 2, added by
    the all-reduce or accumulated; padded or packed): about 1e-7 to 2e-6 of each tensor's norm here, held to 1e-4, where
    a wrong average is far larger (a units count off by one target token of the step's 1,316 is 7.6e-4; a mean
    per process instead of per token, or a wrong world_size factor, percents). The weights are not compared
    with a fixed tolerance: Adam's first step is lr * g / (|g| + eps), about ±lr whatever the gradient's size,
    so where a gradient is near eps rounding alone moves an element by a visible share of lr. Each run's
    weights are held instead to Adam's update of that run's own captured gradient."""
    row_a, row_b = first_row(a), first_row(b)
    assert row_a["units"] == row_b["units"] > 0
    assert row_a["loss"] == pytest.approx(row_b["loss"], rel=1e-5)
    assert row_a["grad_norm"] == pytest.approx(row_b["grad_norm"], rel=1e-5)
    ga, gb = step_a["grads"], step_b["grads"]
    assert [g.shape for g in ga] == [g.shape for g in gb]
    norm = float(torch.cat([g.flatten().double() for g in ga]).norm())
    # the captured gradient is the one whose norm the step logged (clipping is off), and it is not zero
    assert norm == pytest.approx(row_a["grad_norm"], rel=1e-5) and norm > 0
    for i, (x, y) in enumerate(zip(ga, gb, strict=True)):
        assert float((x.double() - y.double()).norm()) <= 1e-4 * float(x.double().norm()), f"gradient {i}"
    lr = step_a["lr"]
    assert lr == step_b["lr"] > 0
    for i, (wa, wb) in enumerate(zip(step_a["before"], step_b["before"], strict=True)):
        assert torch.equal(wa, wb), f"tensor {i} starts the same (seeded initialisation)"
    moved = 0
    for step in (step_a, step_b):
        for w0, w1, u in zip(step["before"], step["after"], adam_first_update(step), strict=True):
            # float32 rounding: a few parts in 1e7 of the update, one unit in the last place of the weight
            slack = 1e-6 * lr + 1.2e-7 * w0.double().abs()
            assert bool(((w1.double() - w0.double() - u).abs() <= slack).all())
            moved += int((u.abs() > 0.5 * lr).sum())
    assert moved > 0  # the update really moved weights (LoRA's B starts at zero; A has no gradient yet)



if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's repro, whatever is installed
    out = Path(sys.argv[1])
    rank = os.environ.get("RANK")
    capture_first_step(out if rank is None else out.with_name(f"{out.stem}-rank{rank}{out.suffix}"))
    from repro.cli import main

    main(sys.argv[2:])
