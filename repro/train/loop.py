"""The one training loop: DDP, gradient accumulation, mixed precision, clipping, checkpoints, resume, logging."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from repro.config import TrainSection
from repro.errors import ReproError
from repro.fsio import append_jsonl, atomic_write_text
from repro.progress import progress
from repro.train.batching import shard_for_rank, token_budget_batches
from repro.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from repro.train.dist import DistInfo, all_reduce_sum, barrier
from repro.train.schedule import make_scheduler

log = logging.getLogger("repro.train")


class TrainingDiverged(ReproError):
    """The loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


@dataclass
class TrainTask:
    """What a recipe brings to the loop: its samples, how to batch them, and its loss.

    `loss(model, batch)` returns (sum of the loss over its units, number of units); the loop divides by
    the units summed over the whole optimizer step on every process, so accumulation and DDP are exact.
    `count_units(batch)` gives that number without running the model.
    """

    lengths: Sequence[int]
    collate: Callable[[list[int]], dict[str, torch.Tensor]]
    loss: Callable[[Any, dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]
    count_units: Callable[[dict[str, torch.Tensor]], int]


@dataclass
class TrainResult:
    steps: int
    final_loss: float | None
    run_dir: Path


def epoch_plan(task: TrainTask, cfg: TrainSection, seed: int, epoch: int, dist: DistInfo) -> list[list[list[int]]]:
    """This rank's optimizer steps for one epoch: each a list of `grad_accum` micro-batches of sample indices."""
    batches = token_budget_batches(
        list(task.lengths),
        cfg.micro_batch_tokens,
        max_batch=cfg.micro_batch_size,
        shuffle_seed=seed * 1000 + epoch,
        padded=not cfg.pack,
    )
    mine = shard_for_rank(batches, dist.rank, dist.world_size)
    n_steps = len(mine) // cfg.grad_accum
    return [mine[i * cfg.grad_accum : (i + 1) * cfg.grad_accum] for i in range(n_steps)]


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is KiB on Linux: the process's peak resident memory
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16):
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def train(
    model: Any,
    task: TrainTask,
    cfg: TrainSection,
    run_dir: Path,
    dist: DistInfo,
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
    resume: bool = False,
) -> TrainResult:
    """Train `model` (already on `device`) on `task`; checkpoints and metrics.jsonl go to `run_dir`."""
    random.seed(seed)
    torch.manual_seed(seed)
    plans = [epoch_plan(task, cfg, seed, e, dist) for e in range(cfg.epochs)]
    steps_per_epoch = len(plans[0])
    total = sum(len(p) for p in plans)
    total = min(total, cfg.max_steps) if cfg.max_steps is not None else total
    if total == 0:
        raise ReproError(
            f"train: no optimizer step fits ({len(task.lengths)} samples, {dist.world_size} process(es), "
            f"grad_accum {cfg.grad_accum}); use more data or a smaller train.grad_accum / train.micro_batch_size"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = min(cfg.warmup_steps, total - 1)
    if warmup < cfg.warmup_steps:
        log.warning(
            "train.warmup_steps=%d is more than this run's %d steps: warming up for %d", cfg.warmup_steps, total, warmup
        )
    scheduler = make_scheduler(optimizer, total, warmup, cfg.schedule, cfg.min_lr_ratio)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and dtype == torch.float16 else None
    step = 0
    if resume and (ckpt := latest_checkpoint(run_dir)) is not None:
        step = load_checkpoint(ckpt, model, optimizer, scheduler)["step"]
        log.info("resumed from %s (step %d of %d)", ckpt, step, total)
        if dist.is_main:
            _truncate_metrics(run_dir / "metrics.jsonl", step)
    wrapped = _wrap_ddp(model, dist, device)
    writer = _tensorboard(run_dir) if cfg.tensorboard and dist.is_main else None
    bar = progress(total, "train", "step", initial=step, enabled=dist.is_main)
    last_loss = None
    while step < total:
        epoch, index = divmod(step, steps_per_epoch)
        started = time.perf_counter()
        micro = [task.collate(idx) for idx in plans[epoch][index]]
        micro = [{k: v.to(device) for k, v in b.items()} for b in micro]
        units = all_reduce_sum(torch.tensor(sum(task.count_units(b) for b in micro), dtype=torch.float64))
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for i, batch in enumerate(micro):
            sync = i == len(micro) - 1
            ctx = wrapped.no_sync() if (not sync and hasattr(wrapped, "no_sync")) else contextlib.nullcontext()
            with ctx, _autocast(device, dtype):
                part, _ = task.loss(wrapped, batch)
                # DDP averages gradients over processes, hence the world size: the sum is over all processes
                scaled = part * dist.world_size / units.to(part.device).clamp(min=1)
                (scaler.scale(scaled) if scaler else scaled).backward()
            loss_sum += part.detach().double()
        loss = (all_reduce_sum(loss_sum.cpu()) / units.clamp(min=1)).item()
        if not math.isfinite(loss):
            good = latest_checkpoint(run_dir)
            raise TrainingDiverged(
                f"loss became {loss} at step {step + 1}; stopped. Last good checkpoint: {good or 'none yet'} "
                "(lower train.lr, or check the data)"
            )
        if scaler:
            scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm).item()
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        last_loss = loss
        tokens = all_reduce_sum(torch.tensor(sum(_real_tokens(b) for b in micro))).item()
        seconds = time.perf_counter() - started
        row = {
            "step": step,
            "epoch": epoch,
            "loss": round(loss, 6),
            "lr": lr,
            "grad_norm": round(grad_norm, 6),
            "tokens": int(tokens),
            "tokens_per_s": round(tokens / seconds, 1),
            "peak_mem_mib": round(peak_memory_mib(device), 1),
        }
        if dist.is_main:
            append_jsonl(run_dir / "metrics.jsonl", row)
            if writer:
                for key in ("loss", "lr", "grad_norm", "tokens_per_s"):
                    writer.add_scalar(f"train/{key}", row[key], step)
            bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{row['tokens_per_s']:.0f}")
            bar.update(1)
        if step % cfg.checkpoint_every == 0 or step == total:
            if dist.is_main:
                save_checkpoint(run_dir, step, model, optimizer, scheduler, {"epoch": epoch}, cfg.keep_last)
            barrier()
    bar.close()
    if writer:
        writer.close()
    return TrainResult(steps=step, final_loss=last_loss, run_dir=run_dir)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the rows of steps after the checkpoint: the resumed run logs them again."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            break  # a torn last line from the kill
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def _real_tokens(batch: dict[str, torch.Tensor]) -> int:
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else batch["input_ids"].numel()  # packed: no padding


def _wrap_ddp(model: Any, dist: DistInfo, device: torch.device) -> Any:
    if dist.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("train.tensorboard: the tensorboard package is not installed; logging to metrics.jsonl only")
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
