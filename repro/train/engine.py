"""The optimizer-step primitive every recipe shares: exact averaging, DDP, mixed precision, clipping, guards."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from repro.config import TrainSection
from repro.errors import ReproError
from repro.train.dist import DistInfo, all_gather_object, all_reduce_max, all_reduce_sum
from repro.train.schedule import make_scheduler

log = logging.getLogger("repro.train")

Batch = dict[str, Any]


class TrainingDiverged(ReproError):
    """The loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


@dataclass
class LossOutput:
    """What a loss returns for one micro-batch: the sum of its loss over its units, how many units it counted,
    and metrics as means over those units (the engine weights them by units over the step and the processes).

    Units are whatever the loss averages over: target tokens (SFT, DAPO), sequences (GRPO), pairs (PO).
    A metric whose name ends in MAX_SUFFIX is a maximum: the engine takes the largest over the step instead.
    """

    loss_sum: torch.Tensor
    units: int | float | torch.Tensor
    metrics: dict[str, float | torch.Tensor] = field(default_factory=dict)


LossFn = Callable[[Any, Batch], LossOutput]
MAX_SUFFIX = "_max"


@dataclass
class StepOutcome:
    loss: float | None  # None when the step had no units (nothing to learn from)
    units: float
    grad_norm: float | None
    lr: float
    metrics: dict[str, float]
    updated: bool  # False when the update was skipped (no units, or a non-finite gradient)


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16):
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _wrap_ddp(model: Any, dist: DistInfo, device: torch.device) -> Any:
    if dist.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _as_float(value: float | torch.Tensor) -> float:
    return float(value.detach().double().item()) if isinstance(value, torch.Tensor) else float(value)


def _agreed_keys(local: dict[str, float]) -> list[str]:
    """The metric names any process has, sorted: one list for every process's collective."""
    return sorted(set().union(*all_gather_object(sorted(local))))


def _maxima(local: dict[str, float], keys: list[str]) -> dict[str, float]:
    """The largest value of each max-metric over the step's counted micro-batches and every process."""
    if not keys:
        return {}
    reduced = all_reduce_max(torch.tensor([local.get(k, -math.inf) for k in keys], dtype=torch.float64))
    return {k: float(reduced[i]) for i, k in enumerate(keys) if math.isfinite(float(reduced[i]))}


class OptimizerStep:
    """Owns the optimizer, schedule, gradient scaler and DDP wrapper; `run` makes one optimizer step.

    Exact averaging: each micro-batch's loss *sum* is backpropagated as is, and once the step's micro-batches
    are done on every process the gradients are multiplied by world_size / (units summed over the step on
    every process) — DDP has averaged them over processes — so accumulation and DDP give the update of one
    big batch, with the units the losses themselves counted.
    """

    def __init__(
        self,
        model: Any,
        cfg: TrainSection,
        dist: DistInfo,
        device: torch.device,
        dtype: torch.dtype,
        total_steps: int,
    ) -> None:
        self.model = model
        self.cfg = cfg
        self.dist = dist
        self.device = device
        self.dtype = dtype
        self.scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and dtype == torch.float16 else None
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ReproError("the model has no trainable parameter: enable model.lora or full fine-tuning")
        if self.scaler is not None:
            self._fp32_master_weights()
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
        if warmup < cfg.warmup_steps:
            log.warning(
                "train.warmup_steps=%d is more than this run's %d steps: warming up for %d",
                cfg.warmup_steps,
                total_steps,
                warmup,
            )
        self.scheduler = make_scheduler(self.optimizer, total_steps, warmup, cfg.schedule, cfg.min_lr_ratio)
        self.wrapped = _wrap_ddp(model, dist, device)
        self.skipped_updates = 0

    def _fp32_master_weights(self) -> None:
        """fp16 training keeps its trainable weights in fp32 (the gradient scaler cannot unscale fp16 grads);
        autocast still computes in fp16. LoRA adapters already are fp32; full fine-tuning is upcast here."""
        upcast = [p for p in self.params if p.dtype == torch.float16]
        for p in upcast:
            p.data = p.data.float()
        if upcast:
            log.info("fp16 training: %d trainable tensors kept in fp32 (master weights)", len(upcast))

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs beyond the optimizer and schedule (JSON-serialisable)."""
        return {"scaler": self.scaler.state_dict() if self.scaler else None, "skipped_updates": self.skipped_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.skipped_updates = int(state.get("skipped_updates", 0))

    def run(self, micro_batches: Sequence[Batch], loss_fn: LossFn, step: int) -> StepOutcome:
        """Forward and backward every micro-batch, then one clipped optimizer update (or a counted skip)."""
        loss_sum = torch.zeros((), dtype=torch.float64)
        units = torch.zeros((), dtype=torch.float64)
        metric_sums: dict[str, float] = {}
        metric_maxes: dict[str, float] = {}
        for i, batch in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or not hasattr(self.wrapped, "no_sync") else self.wrapped.no_sync()
            with sync, _autocast(self.device, self.dtype):
                out = loss_fn(self.wrapped, batch)
                counted = _as_float(out.units)
                if counted < 0 or not math.isfinite(counted):
                    raise ValueError(f"a loss counted {counted} units; units must be a finite count >= 0")
                backward = self.scaler.scale(out.loss_sum) if self.scaler else out.loss_sum
                if backward.requires_grad:
                    backward.backward()
            loss_sum += out.loss_sum.detach().double().cpu()
            units += counted
            for key, value in out.metrics.items():
                if key.endswith(MAX_SUFFIX):
                    if counted:
                        metric_maxes[key] = max(metric_maxes.get(key, -math.inf), _as_float(value))
                else:
                    metric_sums[key] = metric_sums.get(key, 0.0) + _as_float(value) * counted
        # a process whose micro-batches were all idle has no metrics: agree on the names before reducing
        keys, max_keys = _agreed_keys(metric_sums), _agreed_keys(metric_maxes)
        totals = all_reduce_sum(torch.tensor([float(loss_sum), float(units), *[metric_sums.get(k, 0.0) for k in keys]]))
        total_loss, total_units = float(totals[0]), float(totals[1])
        metrics = {k: float(totals[2 + i]) / total_units for i, k in enumerate(keys)} if total_units else {}
        metrics.update(_maxima(metric_maxes, max_keys) if total_units else {})
        lr = self.scheduler.get_last_lr()[0]
        if total_units == 0:
            return self._skip(lr, None, None, metrics, reason="no units")
        loss = total_loss / total_units
        if not math.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss} at step {step}")
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        factor = self.dist.world_size / total_units
        for p in self.params:
            if p.grad is not None:
                p.grad.mul_(factor)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm))
        if not math.isfinite(grad_norm):
            if self.scaler:  # fp16 overflow: the scaler skips this update and lowers its scale
                self.scaler.step(self.optimizer)
                self.scaler.update()
            return self._skip(lr, loss, grad_norm, metrics, reason=f"gradient norm {grad_norm}", units=total_units)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepOutcome(loss, total_units, grad_norm, lr, metrics, updated=True)

    def _skip(
        self,
        lr: float,
        loss: float | None,
        grad_norm: float | None,
        metrics: dict[str, float],
        reason: str,
        units: float = 0.0,
    ) -> StepOutcome:
        """No update from this step's gradients; the schedule still advances, so the plan stays aligned."""
        self.skipped_updates += 1
        log.warning("update skipped (%s); %d skipped so far", reason, self.skipped_updates)
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # torch warns when the schedule moves before any optimizer step: intended
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()
        return StepOutcome(loss, units, grad_norm, lr, metrics, updated=False)
