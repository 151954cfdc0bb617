"""The one stage runner every training command shares: plan check, seed, load, record, drive, save the final model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from repro.config import Recipe, recipe_to_yaml
from repro.fsio import atomic_write_text, swap_folder
from repro.progress import hf_bars
from repro.runrecord import write_environment
from repro.runs import check_resume_plan
from repro.train.dist import DistInfo, barrier
from repro.train.loop import TrainResult

log = logging.getLogger("repro.train")
T = TypeVar("T")


@dataclass
class Stage:
    """What a stage brings to the runner once the model is loaded: the module the optimizer trains (the LM, or
    CPRS's critic around it), its task (a StaticTask for train_static, a StepSource for train_online) or
    `make_task()` to build it once every process has the run folder, a line for the log, and `save(folder)` for
    the final model (default: the adapters or full weights and the tokenizer)."""

    model: Any
    summary: str
    task: Any = None
    make_task: Callable[[], Any] | None = None
    save: Callable[[Path], None] | None = None


def run_stage(
    recipe: Recipe,
    run_dir: Path,
    dist: DistInfo,
    resume: bool,
    section: str,
    read: Callable[[], T],
    build: Callable[[Any, T], Stage],
) -> TrainResult:
    """Train one stage into run_dir and save its final model in run_dir/final.

    In order: a resumed run's plan is checked against the recipe's `section` (and train); `read()` reads the
    data, so bad input fails before any weights load; the seed is set (LoRA's initial A matrices and any new
    head: the same on every rank and every resume); the model loads; `build(loaded, read's result)` makes the
    stage; the main process writes recipe.yaml; the driver trains; the main process saves run_dir/final.
    """
    from repro.modeling import load_model
    from repro.train.loop import StaticTask, train_online, train_static

    if resume:
        check_resume_plan(run_dir, recipe, stage_keys=(section,))
    data = read()
    torch.manual_seed(recipe.seed)
    loaded = load_model(recipe.model, training=True)
    stage = build(loaded, data)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        text = recipe_to_yaml(recipe)
        atomic_write_text(run_dir / "recipe.yaml", text)
        inputs = [getattr(getattr(recipe, section), key, "") for key in ("data", "pairs")]
        write_environment(run_dir, seed=recipe.seed, data_files=[p for p in inputs if p], recipe_text=text)
        log.info("%s, into %s", stage.summary, run_dir)
    task = stage.task
    if stage.make_task is not None:
        barrier()
        task = stage.make_task()
    drive = train_static if isinstance(task, StaticTask) else train_online
    args = (recipe.train, run_dir, dist, loaded.device, loaded.dtype, recipe.seed)
    result = drive(stage.model, task, *args, resume=resume)
    if dist.is_main:
        (stage.save or (lambda out: save_final(loaded.model, loaded.tokenizer, out)))(run_dir / "final")
    return result


def save_final(model: Any, tokenizer: Any, out: Path, save_model: Callable[[Any, Path], None] | None = None) -> None:
    """The trained adapters (or full weights) and the tokenizer, as `from_pretrained` / peft can load them;
    `save_model(model, folder)` instead of `model.save_pretrained` for models that save themselves otherwise."""
    tmp = out.with_name(out.name + ".tmp")
    with hf_bars(enabled=False):
        if save_model is None:
            model.save_pretrained(tmp, safe_serialization=True)
        else:
            save_model(model, tmp)
    tokenizer.save_pretrained(tmp)
    swap_folder(tmp, out)
