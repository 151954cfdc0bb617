"""Learning-rate schedules: linear warmup from 0, then cosine decay to a floor or a constant rate."""

from __future__ import annotations

import math

import torch

from repro.errors import ConfigError

KINDS = ("cosine", "constant")


def lr_at(
    step: int,
    total_steps: int,
    base_lr: float,
    warmup_steps: int,
    kind: str = "cosine",
    min_lr_ratio: float = 0.0,
) -> float:
    """The learning rate before optimizer step `step` (0-based).

    Warmup: base_lr * step / warmup_steps for step < warmup_steps. Then `constant` stays at base_lr and
    `cosine` falls from base_lr at warmup_steps to min_lr_ratio * base_lr at total_steps, and stays there.
    """
    _check(total_steps, warmup_steps, kind, min_lr_ratio)
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    if kind == "constant":
        return base_lr
    decay_steps = total_steps - warmup_steps
    progress = min(1.0, (step - warmup_steps) / decay_steps) if decay_steps > 0 else 1.0
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    kind: str = "cosine",
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR that scales each parameter group's initial lr by lr_at(step, ..., base_lr=1)."""
    _check(total_steps, warmup_steps, kind, min_lr_ratio)

    # a plain function (not a partial or object): LambdaLR.state_dict() then stores None for it,
    # which keeps scheduler checkpoints loadable with torch.load(weights_only=True)
    def factor(step: int) -> float:
        return lr_at(step, total_steps, 1.0, warmup_steps, kind, min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _check(total_steps: int, warmup_steps: int, kind: str, min_lr_ratio: float) -> None:
    if kind not in KINDS:
        raise ConfigError(f"lr schedule '{kind}' is not one of: {', '.join(KINDS)}")
    if total_steps < 1:
        raise ConfigError(f"lr schedule: total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ConfigError(f"lr schedule: warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ConfigError(f"lr schedule: min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
