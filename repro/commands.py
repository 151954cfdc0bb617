"""What every paper's commands share: recipe arguments, the training command (--out, --resume, --nproc), run folders."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import typer

from repro.errors import ReproError

RECIPE_HELP = "Recipe YAML file, e.g. recipes/tiny/base.yaml."
RECIPE = "RECIPE"  # how the recipe argument shows in --help
OVERRIDES_HELP = "Overrides as key.sub=value, e.g. model.lora.r=8 seed=1."
OUT_HELP = "Run folder (default: OUTPUT_DIR/<recipe>-<time>)."
RESUME_HELP = "Continue from the run folder's newest checkpoint."
NPROC_HELP = "Processes: >1 re-launches itself under torchrun (DDP)."


def training_command(group: typer.Typer, name: str, run: str, doc: str) -> Any:
    """Register `name` on `group`: RECIPE [overrides] [--out] [--resume] [--nproc], training with `run`
    ("module:function", imported when the command runs)."""

    def command(
        recipe: str = typer.Argument(..., help=RECIPE_HELP, metavar=RECIPE),
        overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
        out: str = typer.Option(None, "--out", help=OUT_HELP),
        resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
        nproc: int = typer.Option(1, "--nproc", help=NPROC_HELP),
    ) -> None:
        module, function = run.split(":")
        train_stage(getattr(importlib.import_module(module), function), recipe, overrides, out, resume, nproc)

    command.__doc__ = doc
    group.command(name)(command)
    return command


REDO_HELP = "Run this stage again, and every stage after it (finished stages are otherwise reused)."
SEEDS_HELP = "Training seeds, comma-separated, e.g. 0,1: each policy is trained once per seed (default: the profile's)."


PROFILE_HELP = "Where it runs: cpu (2 cores, about 1-2 h), cpu-long (two seeds, about 3 h), gpu or workstation."


class Profile(StrEnum):
    """The reproduction profiles every paper has (recipes/profiles/<paper>.yaml)."""

    cpu = "cpu"
    cpu_long = "cpu-long"
    gpu = "gpu"
    workstation = "workstation"


class Dtype(StrEnum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


def redo_choices(stages: tuple[str, ...]) -> type[StrEnum]:
    """The --redo option's choices: a reproduction's stage keys, in the order they run."""
    return StrEnum("RedoStage", {name: name for name in stages})


def names(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated option ("dapo,grpo") as names; None when not given."""
    return tuple(a.strip() for a in text.split(",") if a.strip()) if text else None


def seed_list(text: str | None) -> tuple[int, ...] | None:
    """--seeds "0,1" as distinct whole numbers >= 0, in order; None when not given."""
    if not text:
        return None
    seeds = []
    for part in names(text) or ():
        if not part.isdigit():
            raise ReproError(f"--seeds: expected whole numbers >= 0 separated by commas (e.g. 0,1), got '{text}'")
        if int(part) not in seeds:
            seeds.append(int(part))
    if not seeds:
        raise ReproError(f"--seeds: expected at least one seed (e.g. 0,1), got '{text}'")
    return tuple(seeds)


def train_stage(
    stage: Any, recipe: str, overrides: list[str] | None, out: str | None, resume: bool, nproc: int
) -> None:
    """Load and check the recipe, re-launch under torchrun for several processes, pick the run folder, train."""
    from repro.config import load_recipe

    cfg = load_recipe(recipe, overrides or [])  # a bad recipe fails here once, not in each process
    with processes(cfg, nproc, out, resume) as (run_dir, dist):
        result = stage(cfg, run_dir, dist, resume=resume)
    if dist.is_main and result.final_loss is None:
        typer.echo(f"nothing left to train: the run had finished its {result.steps} steps; run folder: {run_dir}")
    elif dist.is_main:
        typer.echo(f"{result.steps} steps, final loss {result.final_loss:.4f}; run folder: {run_dir}")


@contextlib.contextmanager
def processes(cfg: Any, nproc: int, out: str | None, resume: bool) -> Iterator[tuple[Any, Any]]:
    """The run folder and this process's DistInfo, with `nproc` processes: more than one re-launches this very
    command under torchrun (a GPU each, or gloo processes when model.device is cpu) and every process runs the
    body; the process group is torn down after it."""
    if nproc < 1:
        raise ReproError(f"--nproc: expected 1 or more processes, got {nproc}")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        check_gpus_for(nproc, on_cpu=cfg.model.device == "cpu")
        _relaunch_under_torchrun(nproc)
    from repro.train.dist import setup_distributed, teardown

    dist = setup_distributed(cpu=cfg.model.device == "cpu")
    try:
        yield agreed_run_folder(cfg, out, resume, dist.is_main), dist
    finally:
        teardown()


def agreed_run_folder(cfg, out: str | None, resume: bool, is_main: bool):
    """Rank 0 picks the run folder (its clock names a new one) and every rank gets it, or the same error."""
    from repro.runs import run_folder
    from repro.train.dist import broadcast_object

    folder, error = None, None
    if is_main:
        try:
            folder = run_folder(cfg.output_dir, cfg.name, out, resume)
        except ReproError as exc:
            error = str(exc)
    folder, error = broadcast_object((folder, error))
    if error:
        raise ReproError(error)
    return folder


def check_gpus_for(nproc: int, on_cpu: bool) -> None:
    """On a GPU machine each process needs a GPU of its own, unless the processes run on the CPU (gloo)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and nproc > gpus and not on_cpu:
        raise ReproError(
            f"--nproc {nproc}: only {gpus} GPU(s) visible; use --nproc {gpus}, or model.device=cpu for CPU processes"
        )


def _relaunch_under_torchrun(nproc: int) -> None:
    """Run this same command again under torchrun with `nproc` processes and exit with its status."""
    import subprocess

    sys.exit(subprocess.call(torchrun_command(nproc, sys.argv[1:])))


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """`torchrun --standalone --nproc_per_node N -m repro ARGV`, with `--nproc` and its value taken out of ARGV."""
    args, skip_value = [], False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg == "--nproc":
            skip_value = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return [*launcher, "-m", "repro", *args]


